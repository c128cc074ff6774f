import ConclaveChildProcess
import ConclaveClient
import Foundation

/// A real `conclave-relay` process on loopback, for the tests of what only a process
/// shows (signals, a core dump, a cluster of nodes), on swift-subprocess (``ChildProcess``):
/// its standard error is kept, its exit is read without polling a pipe.
///
/// ``launch(arguments:port:within:)`` returns once the relay listens: on a port given in
/// advance (so that a cluster node's advertised origin is known before it starts), or on
/// an ephemeral one that it reads from the relay's own log line.
public final class RelayProcess: Sendable {
    public let child: ChildProcess
    public let port: Int

    private init(child: ChildProcess, port: Int) {
        self.child = child
        self.port = port
    }

    public var endpoint: RelayEndpoint { RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: port) }
    /// What the relay has written to standard error so far.
    public var standardError: String { child.standardError }
    public var isRunning: Bool { child.isRunning }

    /// Starts `conclave-relay --listen 127.0.0.1:PORT` with `arguments` (port 0: an
    /// ephemeral one, learnt from its log) and waits until it listens.
    public static func launch(arguments: [String], port: Int = 0, within: Duration = .seconds(15)) async throws -> RelayProcess {
        let child = try await ChildProcess.launch(try TestPaths.executable("conclave-relay"), arguments: ["--listen", "127.0.0.1:\(port)"] + arguments)
        if port != 0 {
            // The relay's own listener, not whatever else might accept on the port.
            try await LoopbackPort.waitUntilListening(port, by: child, within: within)
            return RelayProcess(child: child, port: port)
        }
        // The relay logs its address once it listens.
        var learnt = 0
        try await waitUntil("conclave-relay to log its address", within: within) {
            if let exit = child.exit { throw TestTimeout(what: "conclave-relay's address (it ended: \(exit); \(child.standardError.suffix(500)))") }
            let text = child.standardError
            guard let r = text.range(of: "ws://127.0.0.1:"), let p = Int(text[r.upperBound...].prefix(while: \.isNumber)) else { return false }
            learnt = p
            return true
        }
        return RelayProcess(child: child, port: learnt)
    }

    /// Sends `signal`; after SIGKILL, waits for the process to be gone (its port free).
    public func kill(_ signal: Int32 = SIGKILL) async {
        guard child.isRunning else { return }
        child.signal(signal)
        if signal == SIGKILL { await child.waitForExit() }
    }

    /// Waits up to `within` for the process to exit; whether it did.
    public func waitForExit(within: Duration) async -> Bool {
        await eventually(within: within) { !self.child.isRunning }
    }

    deinit { if child.isRunning { child.signal(SIGKILL) } }
}
