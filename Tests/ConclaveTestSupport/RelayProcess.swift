import Foundation
import Synchronization
import ConclaveClient

/// A real `conclave-relay` process on loopback, for the tests of what only a process
/// shows (signals, a core dump, a cluster of nodes). Its standard error is kept.
///
/// ``launch(arguments:port:within:)`` returns once the relay listens: on a port given in
/// advance (so that a cluster node's advertised origin is known before it starts), or on
/// an ephemeral one that it reads from the relay's own log line.
public final class RelayProcess: @unchecked Sendable {
    // @unchecked: `process` is set in init and only read afterwards; stderr goes through `log`.
    public let process = Process()
    public private(set) var port = 0
    private let log = Mutex<String>("")

    private init() {}

    public var endpoint: RelayEndpoint { RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: port) }
    /// What the relay has written to standard error so far.
    public var standardError: String { log.withLock { $0 } }

    /// Starts `conclave-relay --listen 127.0.0.1:PORT` with `arguments` (port 0: an
    /// ephemeral one, learnt from its log) and waits until it listens.
    public static func launch(arguments: [String], port: Int = 0, within: Duration = .seconds(15)) async throws -> RelayProcess {
        let relay = RelayProcess()
        relay.process.executableURL = URL(fileURLWithPath: try TestPaths.executable("conclave-relay"))
        relay.process.arguments = ["--listen", "127.0.0.1:\(port)"] + arguments
        let stderr = Pipe()
        relay.process.standardError = stderr
        relay.process.standardOutput = FileHandle.nullDevice
        stderr.fileHandleForReading.readabilityHandler = { [weak relay] handle in
            let data = handle.availableData
            guard !data.isEmpty, let relay else { handle.readabilityHandler = nil; return }
            relay.log.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try relay.process.run()
        if port != 0 {
            relay.port = port
            try await LoopbackPort.waitUntilAccepting(port, within: within)
            return relay
        }
        // The relay logs its address once it listens.
        try await waitUntil("conclave-relay to log its address", within: within) {
            guard relay.process.isRunning else { return true }
            let text = relay.standardError
            guard let r = text.range(of: "ws://127.0.0.1:"), let p = Int(text[r.upperBound...].prefix(while: \.isNumber)) else { return false }
            relay.port = p
            return true
        }
        guard relay.port > 0 else {
            throw TestTimeout(what: "conclave-relay's address (it exited: \(relay.standardError.suffix(500)))")
        }
        return relay
    }

    /// Sends `signal`; after SIGKILL, waits for the process to go.
    public func kill(_ signal: Int32 = SIGKILL) {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, signal)
        if signal == SIGKILL { process.waitUntilExit() }
    }

    /// Waits up to `within` for the process to exit; whether it did.
    public func waitForExit(within: Duration) async -> Bool {
        await eventually(within: within) { !self.process.isRunning }
    }

    deinit { kill() }
}
