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

    private init(port: Int, extraArguments: [String]) {
        self.port = port
        self.extraArguments = extraArguments
    }

    /// Starts a server on a free loopback port and waits until it accepts connections.
    public static func launch(extraArguments: [String] = []) async throws -> RedisServerProcess {
        let server = RedisServerProcess(port: try await freePort(), extraArguments: extraArguments)
        try await server.start()
        return server
    }

    public var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: port) }

    public static var binary: String? {
        ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/opt/homebrew/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts (or restarts, after ``kill()``) the server on its port.
    public func start() async throws {
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
        try await Self.waitForPort(port, within: .seconds(15))
    }

    /// SIGKILL: no goodbye to the clients.
    public func kill() {
        guard let p = process else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit { kill() }

    /// A loopback TCP port nothing listens on now (bound, read and released).
    public static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    /// Waits until something accepts on the port: a connect attempt every 20 ms, without
    /// blocking a thread, up to `within`.
    public static func waitForPort(_ port: Int, within: Duration) async throws {
        let deadline = ContinuousClock.now + within
        while true {
            if let ch = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.milliseconds(500))
                .connect(host: "127.0.0.1", port: port).get() {
                try? await ch.close()
                return
            }
            guard ContinuousClock.now < deadline else { throw RedisError.notConnected(reason: "nothing accepted on port \(port) within \(within)") }
            try await Task.sleep(for: .milliseconds(20))
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
