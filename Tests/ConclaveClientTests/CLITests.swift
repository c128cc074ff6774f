import Foundation
import Synchronization
import Testing
import ConclaveProtocol
import ConclaveRelay

/// A `conclave` process with its JSON event lines collected as they come.
final class CLIProcess: @unchecked Sendable {
    // @unchecked: `process` and `stdin` are set in init and only read afterwards; output goes through `raw`.
    let process: Process
    let stdin: Pipe
    /// Standard output (JSON lines in `--json` mode), and standard error apart.
    let raw = Mutex<String>("")
    let errors = Mutex<String>("")

    init(_ arguments: [String]) throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("conclave").path
        try #require(FileManager.default.fileExists(atPath: binary), "conclave not built next to the tests; run `swift build` first")
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        stdin = Pipe()
        let stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        stdout.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            let text = String(decoding: data, as: UTF8.self)
            self.raw.withLock { $0 += text }
        }
        stderr.fileHandleForReading.readabilityHandler = { [self] handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            let text = String(decoding: data, as: UTF8.self)
            self.errors.withLock { $0 += text }
        }
        try process.run()
    }

    func send(_ line: String) { stdin.fileHandleForWriting.write(Data((line + "\n").utf8)) }

    /// Parsed JSON events named `name`, in order (complete lines only).
    func events(_ name: String) -> [[String: Any]] {
        let text = raw.withLock { $0 }
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["event"] as? String == name else { return nil }
            return o
        }
    }

    /// Waits (bounded) for an event matching `predicate`.
    @discardableResult
    func wait(_ name: String, timeout: Duration = .seconds(10), _ predicate: @escaping ([String: Any]) -> Bool = { _ in true }) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let e = events(name).first(where: predicate) { return e }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("no \(name) event; output so far:\n\(raw.withLock { $0 }.suffix(2000))\nstandard error:\n\(errors.withLock { $0 }.suffix(1000))")
        throw CancellationError()
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}

/// Issue 4, must-show 6: waiting room, lock, host-only sharing and mute on entry, end to
/// end from the `conclave` CLI in `--json` mode against a real relay.
@Suite(.serialized, .timeLimit(.minutes(3))) struct CLITests {
    @Test func waitingRoomLockSharingAndMuteFromTheCLI() async throws {
        try await withTestRelay { endpoint, _ in
            let dir = NSTemporaryDirectory() + "conclave-cli-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            FileManager.default.createFile(atPath: "\(dir)/slide.bin", contents: Data((0..<5000).map { UInt8(truncatingIfNeeded: $0) }))
            let relay = "ws://127.0.0.1:\(endpoint.port)"
            let host = try CLIProcess(["host", "--relay", relay, "--name", "Hana", "--json", "--duration", "20", "--send-audio", "tone:440", "--unmute"])
            defer { host.stop() }
            let invite = try await host.wait("invite")["invite"] as! String

            // Waiting room: the joiner waits; the host sees the knock with its name; admission.
            let joiner = try CLIProcess(["join", invite, "--name", "Jun", "--json", "--duration", "15", "--send-audio", "tone:440"])
            defer { joiner.stop() }
            try await joiner.wait("waiting")
            let knock = try await host.wait("knock")
            #expect(knock["name"] as? String == "Jun")
            #expect(joiner.events("admitted").isEmpty, "admitted before the host decided")
            host.send("/admit \(knock["participant"] as! Int)")
            try await joiner.wait("admitted")
            try await joiner.wait("epoch")
            try await host.wait("joined")

            // Mute on entry: the joiner starts muted; its audio reaches no one.
            try await host.wait("muted") { $0["participant"] as? Int == knock["participant"] as? Int }
            try await joiner.wait("audio") { $0["from"] as? Int == 1 && ($0["frames"] as? Int ?? 0) > 10 } // the host's audio arrives
            try await Task.sleep(for: .milliseconds(1200))
            #expect(host.events("audio").allSatisfy { ($0["frames"] as? Int ?? 0) == 0 }, "a muted joiner's audio reached the host")

            // Host-only sharing: the joiner's share reaches no one and it is told.
            joiner.send("/share \(dir)/slide.bin")
            try await joiner.wait("error") { $0["code"] as? String == "not_allowed" }
            try await Task.sleep(for: .milliseconds(500))
            #expect(host.events("share").isEmpty, "a non-presenter's share reached the host")

            // Lock: a new join is refused with room_locked, with one line and a non-zero exit.
            host.send("/lock")
            try await host.wait("locked")
            let late = try CLIProcess(["join", invite, "--name", "Late", "--json", "--duration", "5"])
            late.process.waitUntilExit()
            #expect(late.process.terminationStatus != 0)
            #expect(late.errors.withLock { $0 }.contains("room_locked"), "late joiner's standard error: \(late.errors.withLock { $0 })")
            // In --json mode the refusal is an `error` event on standard output too (issue 10, defect 10).
            #expect(late.events("error").contains { $0["code"] as? String == "room_locked" }, "late joiner's output: \(late.raw.withLock { $0 })")

            // Denied from the waiting room: an `error` event and a non-zero exit.
            host.send("/unlock")
            try await host.wait("unlocked")
            let denied = try CLIProcess(["join", invite, "--name", "Den", "--json", "--duration", "10"])
            defer { denied.stop() }
            try await denied.wait("waiting")
            let knock2 = try await host.wait("knock") { $0["name"] as? String == "Den" }
            host.send("/deny \(knock2["participant"] as! Int)")
            try await denied.wait("error") { $0["code"] as? String == "denied" }
            denied.process.waitUntilExit()
            #expect(denied.process.terminationStatus != 0)
        }
    }
}
