import ConclaveChildProcess
import Foundation
import Synchronization
import Testing
import ConclaveProtocol
import ConclaveRelay

/// A `conclave` process with its JSON event lines collected as they come (on
/// swift-subprocess: ``ChildProcess`` drains its output while it runs).
final class CLIProcess: JSONEventSource {
    let child: ChildProcess

    static func launch(_ arguments: [String]) async throws -> CLIProcess {
        CLIProcess(child: try await ChildProcess.launch(try TestPaths.executable("conclave"), arguments: arguments))
    }

    private init(child: ChildProcess) { self.child = child }

    func send(_ line: String) { child.write(Array((line + "\n").utf8)) }

    /// Complete lines of standard output (JSON lines in `--json` mode).
    var jsonLines: [String] {
        let text = child.standardOutput
        return text.split(separator: "\n", omittingEmptySubsequences: true).dropLast(text.hasSuffix("\n") ? 0 : 1).map(String.init)
    }

    var standardError: String { child.standardError }
    var transcript: String { child.standardOutput + "\nstandard error:\n" + child.standardError.suffix(1000) }

    /// Waits for the process to end by itself; how it ended.
    func exit() async -> ChildProcess.Exit { await child.waitForExit() }

    /// Ends the process if it still runs (its input closed, then SIGTERM); does not wait.
    func stop() {
        child.closeInput()
        if child.isRunning { child.signal(SIGTERM) }
    }
}

/// Issue 4, must-show 6: waiting room, lock, host-only sharing and mute on entry, end to
/// end from the `conclave` CLI in `--json` mode against a real relay.
@Suite(.serialized, .timeLimit(.minutes(3)), .tags(.integration), .live) struct CLITests {
    @Test func waitingRoomLockSharingAndMuteFromTheCLI() async throws {
        try await withRelay { _, endpoint in
            let dir = NSTemporaryDirectory() + "conclave-cli-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            FileManager.default.createFile(atPath: "\(dir)/slide.bin", contents: Data((0..<5000).map { UInt8(truncatingIfNeeded: $0) }))
            let relay = "ws://127.0.0.1:\(endpoint.port)"
            let host = try await CLIProcess.launch([
                "host", "--relay", relay, "--name", "Hana", "--json", "--duration", "20", "--send-audio", "tone:440", "--unmute",
            ])
            defer { host.stop() }
            let invite = try await host.waitFor("invite")["invite"] as! String

            // Waiting room: the joiner waits; the host sees the knock with its name; admission.
            let joiner = try await CLIProcess.launch(["join", invite, "--name", "Jun", "--json", "--duration", "15", "--send-audio", "tone:440"])
            defer { joiner.stop() }
            try await joiner.waitFor("waiting")
            let knock = try await host.waitFor("knock")
            #expect(knock["name"] as? String == "Jun")
            #expect(joiner.events("admitted").isEmpty, "admitted before the host decided")
            host.send("/admit \(knock["participant"] as! Int)")
            try await joiner.waitFor("admitted")
            try await joiner.waitFor("epoch")
            try await host.waitFor("joined")

            // Mute on entry: the joiner starts muted; its audio reaches no one.
            try await host.waitFor("muted") { $0["participant"] as? Int == knock["participant"] as? Int }
            try await joiner.waitFor("audio") { $0["from"] as? Int == 1 && ($0["frames"] as? Int ?? 0) > 10 }  // the host's audio arrives
            // The window: the joiner says it holds its audio back, two more of its once-a-second
            // reports pass, then a chat line it sends after them reaches the host.
            try await joiner.waitFor("muted")
            let reports = joiner.events("audio").count
            try await waitUntil("two more audio reports from the joiner", within: .seconds(10)) { joiner.events("audio").count >= reports + 2 }
            joiner.send("end of the muted window")
            try await host.waitFor("chat") { $0["text"] as? String == "end of the muted window" }
            #expect(host.events("audio").allSatisfy { ($0["frames"] as? Int ?? 0) == 0 }, "a muted joiner's audio reached the host")

            // Host-only sharing: the joiner's share reaches no one and it is told.
            joiner.send("/share \(dir)/slide.bin")
            try await joiner.waitFor("error") { $0["code"] as? String == "not_allowed" }
            // Every chunk was handled before a chat line the joiner sends after them.
            joiner.send("after my share")
            try await host.waitFor("chat") { $0["text"] as? String == "after my share" }
            #expect(host.events("share").isEmpty, "a non-presenter's share reached the host")

            // Lock: a new join is refused with room_locked, with one line and a non-zero exit.
            host.send("/lock")
            try await host.waitFor("locked")
            let late = try await CLIProcess.launch(["join", invite, "--name", "Late", "--json", "--duration", "5"])
            #expect(await late.exit() != .exited(0))
            #expect(late.standardError.contains("room_locked"), "late joiner's standard error: \(late.standardError)")
            // In --json mode the refusal is an `error` event on standard output too (issue 10, defect 10).
            #expect(late.events("error").contains { $0["code"] as? String == "room_locked" }, "late joiner's output: \(late.child.standardOutput)")

            // Denied from the waiting room: an `error` event and a non-zero exit.
            host.send("/unlock")
            try await host.waitFor("unlocked")
            let denied = try await CLIProcess.launch(["join", invite, "--name", "Den", "--json", "--duration", "10"])
            defer { denied.stop() }
            try await denied.waitFor("waiting")
            let knock2 = try await host.waitFor("knock") { $0["name"] as? String == "Den" }
            host.send("/deny \(knock2["participant"] as! Int)")
            try await denied.waitFor("error") { $0["code"] as? String == "denied" }
            #expect(await denied.exit() != .exited(0))
        }
    }
}
