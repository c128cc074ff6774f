import ConclaveChildProcess
import Foundation
import NIOCore
import NIOPosix
import ConclaveClient

/// A `conclave-relay` started as a child process on a loopback port, for the demo and
/// `bench relay`: the participant executable does not link the relay.
///
/// ``start(binary:arguments:)`` returns once the relay accepts WebSocket connections (or
/// throws when it exits first or does not listen within the deadline); ``stop()`` sends
/// SIGTERM and waits for the graceful shutdown. The process runs on swift-subprocess
/// (``ChildProcess``).
final class LocalRelayProcess {
    let endpoint: RelayEndpoint
    private let process: ChildProcess

    private init(endpoint: RelayEndpoint, process: ChildProcess) {
        self.endpoint = endpoint
        self.process = process
    }

    /// `conclave-relay` next to this executable (both are products of the same build).
    static var siblingBinary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("conclave-relay").path
    }

    /// Starts `binary` (default ``siblingBinary``) listening on a free loopback port, with
    /// `arguments` added, and waits up to `deadline` for it to accept connections.
    static func start(
        binary: String?, arguments: [String] = [], logLevel: String = "warning",
        deadline: Duration = .seconds(15)
    ) async throws -> LocalRelayProcess {
        let binary = binary ?? siblingBinary
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CLIError("cannot find conclave-relay at \(binary); build it (swift build) or pass --relay-binary")
        }
        let port = try await freePort()
        let process = try await ChildProcess.launch(binary, arguments: ["--listen", "127.0.0.1:\(port)", "--log-level", logLevel] + arguments)
        let relay = LocalRelayProcess(endpoint: RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: port), process: process)
        let until = ContinuousClock.now + deadline
        while ContinuousClock.now < until {
            if let exit = process.exit {
                throw CLIError("conclave-relay ended (\(exit)) before listening: \(process.standardError.suffix(500))")
            }
            if let c = try? await RelayConnection.connect(to: relay.endpoint, connectTimeout: .milliseconds(200)) {
                await c.close()
                return relay
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        await relay.stop()
        throw CLIError("conclave-relay did not listen on 127.0.0.1:\(port) within \(deadline)")
    }

    /// SIGTERM, then waits for the relay to finish its graceful shutdown. Idempotent.
    func stop() async {
        if process.isRunning { process.signal(SIGTERM) }
        await process.waitForExit()
    }

    /// A loopback port free for both TCP and UDP right now.
    static func freePort() async throws -> Int {
        for _ in 0..<20 {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
            let port = channel.localAddress!.port!
            try await channel.close()
            if let udp = try? await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: port).get() {
                try await udp.close()
                return port
            }
        }
        throw CLIError("no free loopback port for TCP and UDP")
    }
}
