import ArgumentParser
import Foundation
import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol

/// `conclave recording info|export|purge` (protocol/RECORDING.md).
struct RecordingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recording",
        abstract: "Inspect, export and purge end-to-end encrypted recordings.",
        subcommands: [RecordingInfoCommand.self, RecordingExportCommand.self, RecordingPurgeCommand.self]
    )
}

struct RecordingInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Print a recording's header (no key needed; it is authenticated only on export)."
    )

    @Argument(help: "A recording file.")
    var file: String

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let h: RecordingHeader
        do { h = try RecordingReader.header(path: file) } catch { throw CLIError("\(file): \(error)") }
        let now = UInt64(max(0, time(nil)))
        let fingerprints = h.members.map { Fingerprint(bytes: $0).displayString }
        let slots = h.slots.map { slot -> String in
            switch slot {
            case let .identity(fingerprint, _): return "identity \(Fingerprint(bytes: fingerprint).displayString)"
            case let .passphrase(_, passes, memory, _, _): return "passphrase (Argon2id, \(passes) passes, \(memory) KiB)"
            }
        }
        if json {
            var o = "{\"version\":\(RecordingFormat.version),\"recording_id\":\"\(Hex.encode(h.recordingID))\",\"created_at\":\(h.createdAt)"
            o += ",\"retain_until\":\(h.retainUntil),\"expired\":\(h.retainUntil <= now),\"room_hash\":\"\(Hex.encode(h.roomHash))\""
            o += ",\"recorder\":\(EventOutput.quote(Fingerprint(bytes: h.recorder).displayString))"
            o += ",\"members\":[" + fingerprints.map(EventOutput.quote).joined(separator: ",") + "]"
            o += ",\"key_slots\":[" + slots.map(EventOutput.quote).joined(separator: ",") + "]}"
            print(o)
            return
        }
        print("recording \(Hex.encode(h.recordingID)) (format version \(RecordingFormat.version))")
        print("created       \(SessionEvent.utcString(h.createdAt))")
        print("retain until  \(SessionEvent.utcString(h.retainUntil))\(h.retainUntil <= now ? "  (EXPIRED: `conclave recording purge` deletes it)" : "")")
        print("room hash     \(Hex.encode(h.roomHash))")
        print("recorder      \(Fingerprint(bytes: h.recorder).displayString)")
        print("members       \(fingerprints.count) recorded")
        for f in fingerprints { print("  \(f)") }
        print("key slots     \(slots.joined(separator: "; "))")
        print("(header not yet authenticated: `conclave recording export` verifies it with the key)")
    }
}

struct RecordingExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Verify a recording completely, then write one WAV per recorded member and the chat (text and JSON lines)."
    )

    @Argument(help: "A recording file.")
    var file: String

    @Option(help: "An identity file the recording was sealed to.")
    var identity: String?

    @Option(name: .customLong("passphrase-env"), help: "Open with the passphrase in this environment variable instead.")
    var passphraseEnv: String?

    @Option(help: "Directory for the exported files (default: the current one); files there are not overwritten.")
    var out: String = "."

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard (identity == nil) != (passphraseEnv == nil) else { throw ValidationError("give --identity or --passphrase-env") }
    }

    func run() throws {
        let started = ContinuousClock.now
        do {
            let header = try RecordingReader.header(path: file)
            var id: PrivateIdentity?
            if let identity { id = try IdentityFile.load(from: identity) }
            var passphrase: [UInt8]?
            if let name = passphraseEnv {
                guard let value = ProcessInfo.processInfo.environment[name] else { throw CLIError("the environment variable \(name) is not set") }
                passphrase = Array(value.utf8)
            }
            let key = try RecordingReader.unlock(header, identity: id, passphrase: passphrase)
            let now = UInt64(max(0, time(nil)))
            if header.retainUntil <= now {
                FileHandle.standardError.write(
                    Data("warning: this recording's retention deadline (\(SessionEvent.utcString(header.retainUntil))) has passed; it should be deleted\n".utf8)
                )
            }
            let result = try RecordingExport.export(path: file, key: key, to: out)
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let s = result.summary
            if json {
                let members = s.members.map {
                    "{\"participant\":\($0.index),\"name\":\(EventOutput.quote($0.displayName)),\"fingerprint\":\(EventOutput.quote($0.identity.fingerprint.displayString)),\"audio_packets\":\($0.audioPackets),\"chat_lines\":\($0.chatLines)}"
                }
                print(
                    "{\"verified\":true,\"bytes\":\(s.bytes),\"records\":\(s.records),\"duration_ms\":\(s.durationMillis),\"seconds\":\(seconds),"
                        + "\"members\":[\(members.joined(separator: ","))],\"files\":[\(result.files.map(EventOutput.quote).joined(separator: ","))]}")
            } else {
                print("verified \(s.records) records (\(s.bytes) bytes, \(s.durationMillis / 1000) s of meeting) in \(String(format: "%.3f", seconds)) s")
                for m in s.members {
                    print(
                        "  #\(m.index) \(m.displayName.isEmpty ? "(no name)" : RecordingExport.printable(m.displayName)) [\(m.identity.fingerprint.displayString)]: \(m.audioPackets) audio packets, \(m.chatLines) chat lines"
                    )
                }
                for f in result.files { print("wrote \(f)") }
            }
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(file): \(error)")
        }
    }
}

struct RecordingPurgeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete the recordings in a directory whose retention deadline has passed.",
        discussion:
            "Deletion is the filesystem's unlink: the blocks are not overwritten, but they hold only ciphertext whose key was sealed in the deleted file. The deadline is read from the unauthenticated header."
    )

    @Argument(help: "A directory of recordings (not searched recursively).")
    var directory: String

    func run() throws {
        let outcome: RecordingPurge.Outcome
        do { outcome = try RecordingPurge.purge(directory: directory, now: UInt64(max(0, time(nil)))) } catch { throw CLIError("\(error)") }
        for p in outcome.deleted { print("deleted \(p)") }
        for p in outcome.kept { print("kept \(p)") }
        for p in outcome.skipped { print("skipped \(p)") }
        print("\(outcome.deleted.count) deleted, \(outcome.kept.count) kept, \(outcome.skipped.count) skipped")
    }
}
