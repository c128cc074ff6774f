import Foundation
import Synchronization
import ConclaveClient

/// Something that emits `--json` event lines: a participant's ``EventLog``, or a `conclave`
/// process (``CLIProcess``). Both are read and waited on the same way.
protocol JSONEventSource: Sendable {
    /// The complete JSON lines so far.
    var jsonLines: [String] { get }
    /// What a failed wait shows (the output so far).
    var transcript: String { get }
}

extension JSONEventSource {
    /// Parsed events named `name`, in order.
    func events(_ name: String) -> [[String: Any]] {
        jsonLines.compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["event"] as? String == name else { return nil }
            return o
        }
    }

    /// Waits, up to `timeout`, for an event named `name` that matches `predicate`; throws
    /// ``TestTimeout`` with the output so far when none comes.
    @discardableResult
    func waitFor(
        _ name: String, timeout: Duration = .seconds(10),
        _ predicate: @escaping ([String: Any]) -> Bool = { _ in true }
    ) async throws -> [String: Any] {
        var found: [String: Any]?
        guard
            await eventually(
                within: timeout,
                {
                    found = events(name).first(where: predicate); return found != nil
                }), let found
        else {
            throw TestTimeout(what: "a \(name) event; output so far:\n\(transcript.suffix(2000))")
        }
        return found
    }
}

/// Collects the `--json` event lines a participant emits.
final class EventLog: JSONEventSource {
    let lines = Mutex<[String]>([])
    var output: EventOutput { EventOutput(json: true) { line in self.lines.withLock { $0.append(line) } } }
    var jsonLines: [String] { lines.withLock { $0 } }
    var transcript: String { jsonLines.joined(separator: "\n") }
}
