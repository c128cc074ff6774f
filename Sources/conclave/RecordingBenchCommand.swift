import ArgumentParser
import ConclaveChildProcess
import Foundation
import ConclaveClient
import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol

/// `conclave bench recording`: writes a synthetic recording (real Opus packets, several
/// members, some chat) and times, in the same run, a raw `cp` of the file, verifying it
/// (`RecordingReader.read`: decrypt and check every record) and exporting it (verify, then
/// decode to WAVs). Best of `--rounds`; MB/s are of the recording file.
struct RecordingBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recording",
        abstract: "Export speed of an encrypted recording against a raw cp of the same file, in one run."
    )

    @Option(help: "Members recorded (1…50).")
    var members: Int = 5

    @Option(help: "Seconds of meeting (each member talks all the time).")
    var seconds: Int = 600

    @Option(help: "Runs of each measurement (the best is reported).")
    var rounds: Int = 3

    func validate() throws {
        guard (1...50).contains(members), (1...7_200).contains(seconds), (1...10).contains(rounds) else {
            throw ValidationError("--members 1…50, --seconds 1…7200, --rounds 1…10")
        }
    }

    func run() async throws {
        let dir = NSTemporaryDirectory() + "conclave-bench-recording-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/bench.crec"
        let recorder = PrivateIdentity.generate()
        let room = RoomID(bytes: SecureRandom.bytes(count: 16))!
        let id = SecureRandom.bytes(count: 16)
        let writer = try RecordingWriter(
            path: path, recordingID: id, roomID: room, recorder: 1, recorderIdentity: recorder.publicIdentity,
            recipients: .init(identities: [recorder.publicIdentity]), createdAt: 0, retainUntil: 1, startedAtMillis: 0)
        var pipelines: [AudioSendPipeline] = []
        for m in 0..<members {
            let who = m == 0 ? recorder : PrivateIdentity.generate()
            let index = UInt16(m + 1)
            let consent = RecordingConsent.sign(roomID: room, recordingID: id, member: index, recorder: 1, decision: .consent, by: who.signingKey)
            try writer.addMember(index: index, identity: who.publicIdentity, displayName: "member \(index)", consent: consent, atMillis: 0)
            pipelines.append(
                try AudioSendPipeline(
                    source: try AudioSource(spec: .tone(frequency: 300 + 50 * Double(m)), loop: true),
                    configuration: AudioSendConfiguration(reusedPacketCount: 50)))
        }
        for tick in 0..<seconds * 50 {
            let at = UInt32(tick * 20)
            for (m, p) in pipelines.enumerated() {
                guard let packet = try p.nextPacket(nowMicros: UInt64(at) * 1_000) else { continue }
                try writer.audio(index: UInt16(m + 1), atMillis: at, opus: Array(try AudioPacket.decode(packet).opus))
            }
            if tick % 250 == 0 { try writer.chat(index: UInt16(tick / 250 % members + 1), atMillis: at, isPrivate: false, text: "line \(tick / 250)") }
        }
        try writer.finish(atMillis: UInt32(seconds * 1_000), stoppedAtMillis: UInt64(seconds * 1_000))
        let bytes = writer.bytesWritten
        let key = try RecordingReader.unlock(try RecordingReader.header(path: path), identity: recorder, passphrase: nil)

        func best(_ body: (Int) async throws -> Void) async rethrows -> Double {
            var times: [Double] = []
            for round in 0..<rounds {
                let start = ContinuousClock.now
                try await body(round)
                let d = ContinuousClock.now - start
                times.append(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
            }
            return times.min()!
        }
        let cp = try await best { round in
            let copy = try await ChildProcess.launch("/bin/cp", arguments: [path, "\(dir)/copy-\(round).crec"])
            guard await copy.waitForExit() == .exited(0) else { throw CLIError("cp failed: \(copy.standardError)") }
        }
        let verify = try await best { _ in _ = try RecordingReader.read(path: path, key: key) }
        let export = try await best { round in
            let out = "\(dir)/out-\(round)"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            _ = try RecordingExport.export(path: path, key: key, to: out)
        }
        let mb = Double(bytes) / 1_000_000
        func f(_ v: Double, _ d: Int = 1) -> String { String(format: "%.\(d)f", v) }
        print("recording: \(members) members × \(seconds) s, \(f(mb, 2)) MB, best of \(rounds)")
        print("cp        \(f(cp * 1000, 1)) ms  \(f(mb / cp)) MB/s  (baseline)")
        print("verify    \(f(verify * 1000, 1)) ms  \(f(mb / verify)) MB/s  \(f(verify / cp, 1))× cp  (decrypt and check every record)")
        print("export    \(f(export * 1000, 1)) ms  \(f(mb / export)) MB/s  \(f(export / cp, 1))× cp  (verify, then decode to \(members) WAVs of \(seconds) s)")
    }
}
