import ArgumentParser
import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol

/// A local, in-process demonstration of the end-to-end path: identities, a signed and
/// sealed key package per member, Opus audio of a 440 Hz tone encrypted per frame in
/// SFrame, decrypted and decoded by the others, security codes compared, and an attack
/// (a flipped bit, a replay, a relabelled frame) rejected.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a live local demo meeting: a relay, a host and two participants on loopback, on the embedded defaults."
    )

    @Option(help: "Seconds the meeting lasts.")
    var seconds: Double = 6

    @Flag(help: "Run the in-process crypto demo instead (no relay, no sockets).")
    var offline = false

    @Option(name: .customLong("relay-binary"), help: "The conclave-relay to start (default: next to this executable).")
    var relayBinary: String?

    func validate() throws {
        guard seconds >= 3, seconds <= 120 else { throw ValidationError("--seconds must be in [3, 120]") }
    }

    func run() async throws {
        let ok: Bool
        if offline {
            ok = try LocalDemo.run(seconds: min(seconds, 5)) { print($0) }.ok
        } else {
            ok = try await MeetingDemo.run(seconds: seconds, relayBinary: relayBinary)
        }
        if !ok { throw ExitCode(1) }
    }
}

enum LocalDemo {
    struct Report { var ok: Bool }

    static func run(seconds: Double, log: (String) -> Void) throws -> Report {
        let room = RoomID(bytes: SecureRandom.bytes(count: 16))!
        let names = ["host", "alice", "bob"]
        let identities = names.map { _ in PrivateIdentity.generate() }
        let members = identities.enumerated().map { RosterMember(index: UInt16($0.offset + 1), identity: $0.element.publicIdentity) }
        let rosterHash = RosterHash.compute(roomID: room, members: members)
        let leader = identities[0]
        log("room \(room.base64URL)  (3 members, leader fingerprint \(leader.publicIdentity.fingerprint))")

        // The leader draws the epoch secret and sends each member a signed, sealed key package.
        let epochSecret = SecretKey.random()
        var secrets: [SecretKey] = []
        for (i, id) in identities.enumerated() {
            let nonce = SecureRandom.bytes(count: Knock.joinNonceLength)  // from each member's knock (4.2)
            let kp = try KeyPackage.create(
                roomID: room, recipient: UInt16(i + 1), recipientIdentity: id.publicIdentity, joinNonce: nonce, epoch: 1,
                rosterHash: rosterHash, reason: .join, epochSecret: epochSecret, leader: leader.signingKey)
            let opened = try KeyPackage(encoded: kp.encoded).open(
                expectedRoom: room, me: UInt16(i + 1), myIdentity: id, joinNonce: nonce,
                leader: leader.signingKey.publicKey)
            secrets.append(opened.epochSecret)
            log("  \(names[i]): key package of \(kp.encoded.count) bytes verified, epoch \(opened.epoch)")
        }
        let codes = names.indices.map { _ in
            SecurityCode(roomID: room, leader: leader.signingKey.publicKey, rosterHash: rosterHash, chainHead: SignedRoster.chainStart)
        }
        log("security codes: " + zip(names, codes).map { "\($0)=\($1)" }.joined(separator: "  "))
        let codesMatch = Set(codes).count == 1
        log(codesMatch ? "security codes match" : "SECURITY CODES DIFFER")

        // Alice sends a 440 Hz tone; host and Bob decrypt and decode it.
        let metadata = FrameMetadata(roomID: room)
        let senderIndex: UInt16 = 2
        let sendKey = try EpochKeys.senderFrameKey(epochSecret: secrets[1], roomID: room, epoch: 1, sender: senderIndex)
        let receiveKeys = try [0, 2].map { try EpochKeys.senderFrameKey(epochSecret: secrets[$0], roomID: room, epoch: 1, sender: senderIndex) }
        let encoder = try OpusEncoder(sampleRate: 48_000, channels: 1, frameDuration: .ms20, application: .voip)
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5, sampleRate: 48_000, channels: 1)
        let decoders = try receiveKeys.map { _ in try OpusDecoder(sampleRate: 48_000, channels: 1) }
        var decoded: [[Int16]] = [[], []]
        var windows = [ReplayWindow(), ReplayWindow()]
        let md = metadata.bytes(kind: 1, sender: senderIndex, recipient: 0xFFFF)
        let frames = Int(seconds * 50)
        var pcm = [Int16](repeating: 0, count: 960)
        var wire: [[UInt8]] = []
        for ctr in 0..<UInt64(frames) {
            pcm.withUnsafeMutableBufferPointer { tone.fill($0) }
            // The audio plaintext of section 2.6: sequence, timestamp, send time, Opus packet.
            let header = AudioPacketHeader(
                sequence: UInt16(truncatingIfNeeded: ctr), timestamp: UInt32(truncatingIfNeeded: ctr * 960), sendTimeMicros: ctr * 20_000)
            let packet = try AudioPacket.encode(header, opus: try encoder.encode(pcm))
            let frame = try sendKey.seal(counter: ctr, metadata: md, plaintext: packet)
            wire.append(frame)
            for r in 0..<2 {
                let (counter, plain) = try receiveKeys[r].openFrame(frame, metadata: md)
                guard windows[r].check(counter) == .fresh else { continue }
                windows[r].accept(counter)
                let (_, opus) = try AudioPacket.decode(plain)
                decoded[r] += try decoders[r].decode(Array(opus))
            }
        }
        var tonesOK = true
        for (r, name) in zip([0, 1], ["host", "bob"]) {
            let f = DominantFrequency.estimate(samples: Array(decoded[r].dropFirst(2400)), sampleRate: 48_000, channels: 1) ?? 0
            let ok = abs(f - 440) / 440 < 0.02
            tonesOK = tonesOK && ok
            log("  \(name) decoded \(frames) encrypted Opus frames from alice: dominant frequency \(String(format2: f)) Hz \(ok ? "(ok)" : "(WRONG)")")
        }

        // What an attacker in the middle gets.
        var rejected = 0
        var tampered = wire[10]; tampered[tampered.count / 2] ^= 0x01
        if (try? receiveKeys[0].openFrame(tampered, metadata: md)) == nil { rejected += 1 }
        let relabelled = metadata.bytes(kind: 2, sender: senderIndex, recipient: 0xFFFF)
        if (try? receiveKeys[0].openFrame(wire[11], metadata: relabelled)) == nil { rejected += 1 }
        if let (counter, _) = try? receiveKeys[0].openFrame(wire[12], metadata: md), windows[0].check(counter) != .fresh { rejected += 1 }
        log("attacks rejected: \(rejected)/3 (flipped bit, audio relabelled as screen, replay)")
        let ok = codesMatch && tonesOK && rejected == 3
        log(ok ? "demo ok" : "demo FAILED")
        return Report(ok: ok)
    }
}

extension SFrameKey {
    func openFrame(_ frame: [UInt8], metadata: [UInt8]) throws -> (UInt64, [UInt8]) {
        var out = [UInt8](repeating: 0, count: frame.count)
        let r = try out.withUnsafeMutableBytes { o in
            try frame.withUnsafeBytes { f in try metadata.withUnsafeBytes { m in try open(frame: f, metadata: m, into: o) } }
        }
        return (r.counter, Array(out[0..<r.plaintextLength]))
    }

    func seal(counter: UInt64, metadata: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: sealedLength(counter: counter, plaintextLength: plaintext.count))
        let n = try out.withUnsafeMutableBytes { o in
            try metadata.withUnsafeBytes { m in try plaintext.withUnsafeBytes { p in try seal(counter: counter, metadata: m, plaintext: p, into: o) } }
        }
        return Array(out[0..<n])
    }
}

extension String {
    init(format2 value: Double) {
        let scaled = (value * 100).rounded() / 100
        self = "\(scaled)"
    }
}
