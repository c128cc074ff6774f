import ConclaveChildProcess
import Foundation
import NIOCore
import Synchronization
import NIOPosix
import ConclaveRedis

/// A real `redis-server` on a loopback port (scripts/install-deps.sh installs it), for the live tests: no persistence, killed
/// when the test ends, restartable on the same port. Runs on swift-subprocess (``ChildProcess``).
public final class RedisServerProcess: Sendable {
    public let port: Int
    private let extraArguments: [String]
    private let process = Mutex<ChildProcess?>(nil)

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
        let child = try await ChildProcess.launch(
            binary,
            arguments: [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "warning", "--dir", NSTemporaryDirectory(),
            ] + extraArguments)
        process.withLock { $0 = child }
        try await LoopbackPort.waitUntilAccepting(port, within: .seconds(15))
    }

    /// SIGKILL: no goodbye to the clients. Returns once the process is gone and its port free.
    public func kill() async {
        guard
            let child = process.withLock({ p -> ChildProcess? in
                defer { p = nil }; return p
            })
        else { return }
        child.signal(SIGKILL)
        await child.waitForExit()
    }

    deinit { process.withLock { $0?.signal(SIGKILL) } }
}

extension RedisServerProcess {
    /// `redis://127.0.0.1:PORT`.
    public var url: String { "redis://127.0.0.1:\(port)" }
}
