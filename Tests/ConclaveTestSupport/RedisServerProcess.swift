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
        let server = RedisServerProcess(port: try await LoopbackPort.free(), extraArguments: extraArguments)
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
        p.arguments =
            [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "warning", "--dir", NSTemporaryDirectory(),
            ] + extraArguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try await LoopbackPort.waitUntilAccepting(port, within: .seconds(15))
    }

    /// SIGKILL: no goodbye to the clients.
    public func kill() {
        guard let p = process else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    deinit { kill() }
}

extension RedisServerProcess {
    /// `redis://127.0.0.1:PORT`.
    public var url: String { "redis://127.0.0.1:\(port)" }
}
