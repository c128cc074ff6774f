import Foundation
import NIOCore
import NIOPosix
import ConclaveRedis

/// A real `redis-server` on a loopback port (scripts/install-deps.sh installs it), for the live tests: no persistence, killed
/// when the test ends, restartable on the same port.
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    private let extraArguments: [String]
    private var process: Process?

    public init(extraArguments: [String] = []) throws {
        self.port = try Self.freePort()
        self.extraArguments = extraArguments
        try start()
    }

    public var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: port) }

    public static var binary: String? {
        ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/opt/homebrew/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public func start() throws {
        guard let binary = Self.binary else {
            throw RedisError.notConnected(reason: "redis-server is not installed (scripts/install-deps.sh installs it)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                       "--daemonize", "no", "--loglevel", "warning", "--dir", NSTemporaryDirectory()] + extraArguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try Self.waitForPort(port, deadline: .now() + .seconds(10))
    }

    /// SIGKILL: no goodbye to the clients.
    public func kill() {
        guard let p = process else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit { kill() }

    public static func freePort() throws -> Int {
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress!.port!
        try channel.close().wait()
        return port
    }

    /// Waits until something accepts on the port (a connect attempt per 20 ms, up to the deadline).
    public static func waitForPort(_ port: Int, deadline: NIODeadline) throws {
        let group = MultiThreadedEventLoopGroup.singleton
        while true {
            if let ch = try? ClientBootstrap(group: group).connectTimeout(.milliseconds(200)).connect(host: "127.0.0.1", port: port).wait() {
                try? ch.close().wait()
                return
            }
            guard NIODeadline.now() < deadline else { throw RedisError.notConnected(reason: "redis-server did not open port \(port)") }
            usleep(20_000)
        }
    }
}

/// Polls `condition` until it holds or the deadline passes; true if it held.
public func eventually(within: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + within
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

extension RedisServerProcess {
    /// `redis://127.0.0.1:PORT`.
    public var url: String { "redis://127.0.0.1:\(port)" }
}
