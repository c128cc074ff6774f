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

    /// Starts a server on a free loopback port and waits until it is the listener there. If
    /// something else took the port first, tries another (3 ports at most).
    public static func launch(extraArguments: [String] = []) async throws -> RedisServerProcess {
        var failures: [String] = []
        for _ in 0..<3 {
            do {
                return try await launch(port: try await LoopbackPort.free(), extraArguments: extraArguments)
            } catch let failure as StartFailure {
                failures.append(failure.description)
            }
        }
        throw StartFailure(description: "redis-server did not start on 3 ports: " + failures.joined(separator: "; "))
    }

    /// Starts a server on `port` (no other port is tried) and waits until it is the listener
    /// there. Throws ``StartFailure`` if it is not (another listener holds the port).
    public static func launch(port: Int, extraArguments: [String] = []) async throws -> RedisServerProcess {
        let server = RedisServerProcess(port: port, extraArguments: extraArguments)
        try await server.start()
        return server
    }

    /// The server did not come up as the listener on its port.
    public struct StartFailure: Error, CustomStringConvertible {
        public let description: String
    }

    public var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: port) }

    public static var binary: String? {
        ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/opt/homebrew/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts (or restarts, after ``kill()``) the server on its port; throws ``StartFailure``
    /// if it does not become the listener there.
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
        // Its own listener, not merely something accepting on the port: a test must never
        // talk to another server that holds it.
        do {
            try await LoopbackPort.waitUntilListening(port, by: child, within: .seconds(15))
        } catch let notListening as LoopbackPort.NotListening {
            await kill()
            throw StartFailure(description: "redis-server on 127.0.0.1:\(port): \(notListening)")
        }
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
