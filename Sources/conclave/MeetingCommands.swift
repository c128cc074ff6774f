import ArgumentParser
import Foundation
import ConclaveClient
import ConclaveMedia
import ConclaveProtocol

/// Options shared by `host` and `join`.
struct MeetingOptions: ParsableArguments {
    @Option(help: "Your display name (sent only inside the sealed knock and the encrypted roster).")
    var name: String

    @Option(help: "Identity file from `conclave keygen`; without it a fresh identity is used for this run.")
    var identity: String?

    @Option(help: "PEM file to trust for a wss:// relay with a self-signed certificate.")
    var ca: String?

    @Option(name: .customLong("send-audio"), help: "Audio to send: a WAV file, tone:FREQ, noise or silence.")
    var sendAudio: String?

    @Option(help: "Record the meeting, end-to-end encrypted, to this new file (needs the recorder right; each member only after consenting).")
    var record: String?

    @Option(name: .customLong("record-dir"), help: "Record as --record does, into a new file in this directory.")
    var recordDir: String?

    @Option(name: .customLong("retain-days"), help: "Days to keep a recording before `conclave recording purge` deletes it.")
    var retainDays: Int = 30

    @Option(name: .customLong("record-passphrase-env"), help: "Also let the passphrase in this environment variable open the recording.")
    var recordPassphraseEnv: String?

    @Flag(name: .customLong("consent-recording"), help: "Consent to any recording announced in the meeting (scripts).")
    var consentRecording = false

    @Flag(name: .customLong("decline-recording"), help: "Decline any recording announced in the meeting: stay, unrecorded.")
    var declineRecording = false

    @Option(help: "Chat line to send once others can read it (repeatable).")
    var say: [String] = []

    @Option(help: "A file to share as screen frames once others are present (needs presenter rights).")
    var share: String?

    @Option(name: .customLong("save-shares"), help: "Save every received share into this directory.")
    var saveShares: String?

    @Flag(help: "Unmute as soon as admitted (participants enter muted).")
    var unmute = false

    @Option(help: "Leave after this many seconds (default: until stdin closes or the meeting ends).")
    var duration: Double?

    @Flag(help: "Print one JSON object per line instead of readable lines.")
    var json = false

    @Option(
        name: .customLong("failover-seconds"),
        help:
            "When the relay connection drops without the meeting ending (a cluster node died or drained), rejoin through the cluster for this long; 0: end at once."
    )
    var failoverSeconds: Double = 30

    @Option(name: .customLong("fallback-relay"), help: "Another node of the relay's cluster to try on failover, e.g. ws://10.0.0.2:7443 (repeatable).")
    var fallbackRelay: [String] = []

    func participantOptions() throws -> ParticipantOptions {
        var o = ParticipantOptions(displayName: name)
        if let identity {
            do { o.identity = try IdentityFile.load(from: identity) } catch { throw CLIError(error.description) }
        }
        if let ca {
            guard FileManager.default.isReadableFile(atPath: ca) else { throw CLIError("cannot read the CA file \(ca)") }
            o.tls = .trusting(pemFile: ca)
        }
        if let sendAudio {
            do {
                let spec = try AudioSourceSpec(parsing: sendAudio)
                _ = try AudioSource(spec: spec, loop: true)  // fail now, with a clear line, on an unreadable WAV
                o.audioSource = spec
            } catch {
                throw CLIError("cannot use audio source \(sendAudio): \(error)")
            }
        }
        o.recordPath = record
        if let recordDir {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: recordDir, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("--record-dir needs an existing directory: \(recordDir)")
            }
            o.recordDirectory = recordDir
        }
        o.retainDays = retainDays
        if let name = recordPassphraseEnv {
            guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
                throw CLIError("--record-passphrase-env: the environment variable \(name) is not set")
            }
            o.recordingPassphrase = Array(value.utf8)
        }
        o.recordingConsent = consentRecording ? .consent : declineRecording ? .decline : .ask
        o.say = say
        if let share {
            guard FileManager.default.isReadableFile(atPath: share) else { throw CLIError("cannot read the file to share: \(share)") }
            o.sharePath = share
        }
        if let saveShares {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: saveShares, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("--save-shares needs an existing directory: \(saveShares)")
            }
            o.saveSharesDirectory = saveShares
        }
        o.unmuteOnJoin = unmute
        o.failoverWindow = failoverSeconds > 0 ? .milliseconds(Int64(failoverSeconds * 1000)) : nil
        for text in fallbackRelay {
            do { o.fallbackRelays.append(try RelayEndpoint(parsing: text)) } catch { throw CLIError("--fallback-relay \(text): \(error)") }
        }
        return o
    }

    func validate() throws {
        guard (1...64).contains(name.utf8.count) else { throw ValidationError("--name must be 1 to 64 bytes") }
        if let duration, !(duration > 0 && duration <= 86_400) { throw ValidationError("--duration must be in (0, 86400] seconds") }
        guard (1...3_650).contains(retainDays) else { throw ValidationError("--retain-days must be 1 to 3650") }
        guard !(consentRecording && declineRecording) else { throw ValidationError("--consent-recording and --decline-recording exclude each other") }
        guard record == nil || recordDir == nil else { throw ValidationError("give --record or --record-dir, not both") }
        guard (0...3_600).contains(failoverSeconds) else { throw ValidationError("--failover-seconds must be 0 to 3600") }
    }

    var output: EventOutput {
        // Unbuffered, so a script reading a pipe sees each event as it happens.
        EventOutput(json: json) { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }
}

struct HostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Create a room on a relay, print its invite, and hold the room's keys."
    )

    @Option(help: "The relay, e.g. ws://127.0.0.1:7443 or wss://relay.example.org.")
    var relay: String = "ws://127.0.0.1:7443"

    @Option(help: "Room password (default: a random one; shared out of band in the invite).")
    var password: String?

    @Flag(name: .customLong("no-password"), help: "Create the room without a password.")
    var noPassword = false

    @Flag(name: .customLong("no-waiting-room"), help: "Admit joiners at once instead of through the waiting room.")
    var noWaitingRoom = false

    @Flag(name: .customLong("auto-admit"), help: "Admit every knock at once.")
    var autoAdmit = false

    @Option(name: .customLong("rotate-seconds"), help: "Draw a fresh key this often (default 600).")
    var rotateSeconds: Int?

    @OptionGroup var meeting: MeetingOptions

    func run() async throws {
        let endpoint: RelayEndpoint
        do { endpoint = try RelayEndpoint(parsing: relay) } catch { throw CLIError("bad relay address \(relay): \(error)") }
        var options = try meeting.participantOptions()
        options.autoAdmit = autoAdmit
        if let rotateSeconds {
            guard (5...86_400).contains(rotateSeconds) else { throw CLIError("--rotate-seconds must be 5 to 86400") }
            options.rotationIntervalMillis = UInt64(rotateSeconds) * 1000
        }
        var settings = RoomSettings.privacyDefaults
        settings.waitingRoom = !noWaitingRoom
        settings.maxParticipants = UInt16(SignedRoster.maximumMembers)  // what a signed ROSTER lists (3.6)
        let pw: String? = noPassword ? nil : (password ?? Self.randomPassword())
        let output = meeting.output
        let participant: Participant
        do {
            participant = try await Participant.host(relay: endpoint, password: pw, settings: settings, options: options, output: output)
        } catch let error as SessionError {
            throw refusal(error, output: output, json: meeting.json)
        }
        try await runMeeting(participant, duration: meeting.duration, output: output, json: meeting.json)
    }

    /// 20 characters of base64url: about 120 bits.
    static func randomPassword() -> String {
        var g = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        return String((0..<20).map { _ in alphabet[Int.random(in: 0..<64, using: &g)] })
    }
}

struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Join a room with an invite (the host's key and the password travel in its secret part)."
    )

    @Argument(help: "The invite printed by `conclave host`.")
    var invite: String

    @OptionGroup var meeting: MeetingOptions

    func run() async throws {
        let parsed: Invite
        do { parsed = try Invite(parsing: invite) } catch { throw CLIError("bad_invite: \(error)") }
        let output = meeting.output
        let participant: Participant
        do {
            participant = try await Participant.join(invite: parsed, options: try meeting.participantOptions(), output: output)
        } catch let error as SessionError {
            throw refusal(error, output: output, json: meeting.json)
        }
        try await runMeeting(participant, duration: meeting.duration, output: output, json: meeting.json)
    }
}

/// A session that could not start: in `--json` mode an `error` event on standard output
/// too, then one line on standard error and a non-zero exit.
func refusal(_ error: SessionError, output: EventOutput, json: Bool) -> CLIError {
    if json { output.emit("error", [("code", .string(error.code.name)), ("message", .string(error.description))], human: error.description) }
    return CLIError(error.description)
}

/// Runs the session, feeding it lines from standard input. A session ended by a refusal
/// (denied, banned, removed, ...) rather than by the host ending the meeting or the
/// duration exits non-zero, with an `error` event in `--json` mode.
func runMeeting(_ participant: Participant, duration: Double?, output: EventOutput, json: Bool) async throws {
    let lines = AsyncStream<String> { continuation in
        let thread = Thread {
            while let line = readLine() { continuation.yield(line) }
            continuation.finish()
        }
        thread.start()
    }
    let console = Task {
        for await line in lines {
            do {
                if let command = try ConsoleCommand.parse(line) { await participant.perform(command) }
            } catch {
                output.emit("error", [("code", .string("bad_command")), ("message", .string("\(error)"))], human: "\(error)")
            }
            if await !participant.isRunning { break }
        }
    }
    await participant.run(for: .milliseconds(Int64((duration ?? 86_400) * 1000)))
    console.cancel()
    if let code = await participant.endedBy, code != .ended {
        throw refusal(.refused(code, code.meaning), output: output, json: json)
    }
    if await participant.recordingRefused {
        throw CLIError("recording_refused: no recording was made; only the host and members the host made recorders (/grant-record) may record")
    }
}
