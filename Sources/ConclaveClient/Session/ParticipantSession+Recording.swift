import ConclaveCrypto
import ConclaveProtocol

/// How a member answers a recording notice without being asked (`--consent-recording`,
/// `--decline-recording`), or that it asks its user (`/consent`, `/decline`).
public enum RecordingConsentPolicy: String, Sendable {
    case ask
    case consent
    case decline
}

/// What a recorder's driver does with its recording file.
public enum RecordingAction: Sendable, Equatable {
    /// Create the file (protocol/RECORDING.md) for this recording.
    case start(recordingID: [UInt8], retainUntil: UInt64)
    /// A member's signed consent arrived: add it; from now on write its audio and chat.
    case member(index: UInt16, identity: PublicIdentity, displayName: String, consent: RecordingConsent)
    /// Write the final record and close the file.
    case stop
}

/// A participant's recording state (3.8): as recorder, the running recording and who
/// consented; as member, the recordings others announced and this client's answers.
struct RecordingSessionState: Sendable {
    struct Own: Sendable {
        var id: [UInt8]
        var retainUntil: UInt64
        /// Members told of this recording, with the identity told and when (a notice is
        /// repeated every ``noticeRepeatMillis`` until the member answers).
        var announced: [UInt16: (identity: PublicIdentity, at: UInt64)]
        /// Answers, by index, with the identity that signed them. An index counts as
        /// recorded only while the verified roster still seats that identity there.
        var consented: [UInt16: PublicIdentity]
        var declined: [UInt16: PublicIdentity]
    }
    var own: Own?
    var noticeSequence: UInt32 = 0
    /// Recordings others announced and still run: recorder → (id, retain until, the
    /// recorder's identity).
    var running: [UInt16: (id: [UInt8], retainUntil: UInt64, recorder: PublicIdentity)] = [:]
    /// The highest notice sequence accepted from each recorder.
    var lastSequence: [UInt16: UInt32] = [:]
    /// This client's answers, by recorder, for the recording id answered.
    var answered: [UInt16: [UInt8]] = [:]
}

extension ParticipantSession {
    /// The type byte of a recording control message (3.8), which any member may send.
    static func isRecordingControl(_ plaintext: [UInt8]) -> Bool {
        plaintext.first == RecordingNotice.type || plaintext.first == RecordingConsent.type
    }

    /// A member's entry in the verified roster (the leader's own entries while leading).
    func verifiedEntry(_ i: UInt16) -> SignedRoster.Entry? {
        if let l = leader { return l.entries.first { $0.index == i } }
        return member?.roster?.entry(for: i)
    }

    /// Indices of the verified roster.
    var verifiedIndices: [UInt16] {
        if let l = leader { return l.entries.map(\.index) }
        return member?.roster?.entries.map(\.index) ?? []
    }

    /// Whether the verified roster lets this client record.
    public var mayRecord: Bool { verifiedEntry(index)?.mayRecord ?? false }

    /// This client is recording.
    public var isRecording: Bool { recording.own != nil }

    /// Whether `member`'s media may be written to this client's recording: its signed
    /// consent arrived, from the identity the verified roster seats at that index now
    /// (this client's own media after it started recording).
    public func isRecorded(_ member: UInt16) -> Bool {
        guard let consented = recording.own?.consented[member] else { return false }
        return member == index || verifiedEntry(member)?.identity == consented
    }

    /// Recordings by others that run now (recorder → retention deadline).
    public var recordingsRunning: [UInt16: UInt64] { recording.running.mapValues(\.retainUntil) }

    /// A member who has not answered is told again this often (a notice sealed under an
    /// epoch it could not open yet is not lost).
    static let noticeRepeatMillis: UInt64 = 5_000

    // MARK: Recorder

    /// Starts recording: needs keys and the recorder right in the verified roster (the
    /// host always has it). Broadcasts a signed `RECORDING_NOTICE`; nothing of anyone is
    /// written before that member's signed consent comes back. `retainUntil` is Unix
    /// seconds.
    public mutating func startRecording(retainUntil: UInt64, now: UInt64) -> [Action] {
        guard recording.own == nil else { return [.event(.recordingRefused("already recording"))] }
        guard canSeal(now: now) else { return [.event(.recordingRefused("recording starts once this client holds the meeting's keys"))] }
        guard mayRecord else {
            return [.event(.recordingRefused("only the host and members the host made recorders may record (/grant-record); ask the host"))]
        }
        let id = configuration.random().withUnsafeBytes { Array($0.prefix(RecordingNotice.recordingIDLength)) }
        var announced: [UInt16: (identity: PublicIdentity, at: UInt64)] = [:]
        for i in verifiedIndices where i != index {
            if let e = verifiedEntry(i) { announced[i] = (e.identity, now) }
        }
        recording.own = RecordingSessionState.Own(id: id, retainUntil: retainUntil, announced: announced, consented: [:], declined: [:])
        var out: [Action] = [.recording(.start(recordingID: id, retainUntil: retainUntil))]
        // The recorder's own media: its consent is its own act of recording.
        let mine = RecordingConsent.sign(roomID: roomID, recordingID: id, member: index, recorder: index, decision: .consent, by: identity.signingKey)
        recording.own?.consented[index] = identity.publicIdentity
        out.append(.recording(.member(index: index, identity: identity.publicIdentity, displayName: configuration.displayName, consent: mine)))
        out += sendNotice(.recording, to: .everyone, now: now)
        out.append(.event(.recordingStarted(retainUntil: retainUntil)))
        return out
    }

    /// Stops this client's recording: a signed stop notice, then the file is closed.
    public mutating func stopRecording(now: UInt64, reason: String = "stopped") -> [Action] {
        guard recording.own != nil else { return [] }
        var out = sendNotice(.stopped, to: .everyone, now: now)
        recording.own = nil
        out.append(.recording(.stop))
        out.append(.event(.recordingStopped(reason)))
        return out
    }

    private mutating func sendNotice(_ state: RecordingNotice.State, to recipient: ParticipantIndex, now: UInt64) -> [Action] {
        guard let own = recording.own else { return [] }
        recording.noticeSequence &+= 1
        let notice = RecordingNotice.sign(
            roomID: roomID, recordingID: own.id, recorder: index, state: state,
            retainUntil: state == .recording ? own.retainUntil : 0,
            sequence: recording.noticeSequence, by: identity.signingKey)
        guard let frame = try? seal(.control, to: recipient, plaintext: notice.encoded, now: now, epoch: .newest) else { return [] }
        return [.send(.frame(frame))]
    }

    /// On every tick. Recorder: a joiner of the verified roster is told of the running
    /// recording before any of its media is written, and told again until it answers; a
    /// recorder whose right was revoked stops. Member: a recording whose recorder left the
    /// verified roster (or whose index now seats another identity) is over.
    mutating func recordingTick(now: UInt64) -> [Action] {
        var out: [Action] = []
        for (recorder, r) in recording.running where verifiedEntry(recorder)?.identity != r.recorder && hasKeys {
            recording.running[recorder] = nil
            out.append(.event(.recordingNotice(recorder: recorder, on: false, retainUntil: nil)))
        }
        guard let own = recording.own else { return out }
        // Only a verified roster that lists this client without the right revokes it (a
        // change of leader briefly leaves no roster at hand).
        if let mine = verifiedEntry(index), !mine.mayRecord {
            return out + stopRecording(now: now, reason: "the host revoked this client's right to record")
        }
        for i in verifiedIndices where i != index {
            guard let entry = verifiedEntry(i) else { continue }
            let answered = own.consented[i] == entry.identity || own.declined[i] == entry.identity
            if let told = own.announced[i], told.identity == entry.identity,
                answered || now < told.at &+ Self.noticeRepeatMillis
            {
                continue
            }
            recording.own?.announced[i] = (entry.identity, now)
            out += sendNotice(.recording, to: ParticipantIndex(i), now: now)
        }
        return out
    }

    // MARK: Member

    /// Answers every recording that runs and that this client has not answered.
    public mutating func answerRecording(_ decision: RecordingConsent.Decision, now: UInt64) -> [Action] {
        var out: [Action] = []
        for (recorder, r) in recording.running.sorted(by: { $0.key < $1.key }) where recording.answered[recorder] != r.id {
            recording.answered[recorder] = r.id
            let answer = RecordingConsent.sign(
                roomID: roomID, recordingID: r.id, member: index, recorder: recorder, decision: decision, by: identity.signingKey)
            if let frame = try? seal(.control, to: ParticipantIndex(recorder), plaintext: answer.encoded, now: now, epoch: .newest) {
                out.append(.send(.frame(frame)))
            }
            out.append(.event(.recordingAnswered(recorder: recorder, consent: decision == .consent)))
        }
        if out.isEmpty { out.append(.event(.recordingRefused("no recording is waiting for an answer"))) }
        return out
    }

    /// A recording notice or consent, opened from a control frame of `frame.sender`.
    mutating func recordingControl(_ frame: ReceivedFrame, now: UInt64) -> [Action] {
        let decoded: E2EControlMessage
        do { decoded = try E2EControlMessage.decode(frame.plaintext) } catch {
            return [.event(.keyRejected("recording message from #\(frame.sender): \(error)"))]
        }
        switch decoded {
        case let .recordingNotice(n): return recordingNotice(n, from: frame.sender, now: now)
        case let .recordingConsent(c): return recordingConsent(c, from: frame.sender)
        default: return []
        }
    }

    mutating func recordingNotice(_ n: RecordingNotice, from sender: UInt16, now: UInt64) -> [Action] {
        guard n.recorder == sender, sender != index, n.roomID == roomID, let entry = verifiedEntry(sender),
            n.isSigned(by: entry.identity.signingKey)
        else {
            return [.event(.keyRejected("a recording notice from #\(sender) that is not signed by that member of the verified roster"))]
        }
        guard n.sequence > recording.lastSequence[sender, default: 0] else {
            return [.event(.keyRejected("a replayed recording notice from #\(sender)"))]
        }
        recording.lastSequence[sender] = n.sequence
        switch n.state {
        case .recording:
            guard entry.mayRecord else {
                return [
                    .event(.alert(.requestRejected, "#\(sender) announced a recording without the right to record; it is not a recorder in the signed roster"))
                ]
            }
            let isNew = recording.running[sender]?.id != n.recordingID
            recording.running[sender] = (n.recordingID, n.retainUntil, entry.identity)
            guard isNew else { return [] }
            var out: [Action] = [.event(.recordingNotice(recorder: sender, on: true, retainUntil: n.retainUntil))]
            switch configuration.recordingConsent {
            case .ask: break
            case .consent: out += answerRecording(.consent, now: now)
            case .decline: out += answerRecording(.decline, now: now)
            }
            return out
        case .stopped:
            guard recording.running.removeValue(forKey: sender) != nil else { return [] }
            return [.event(.recordingNotice(recorder: sender, on: false, retainUntil: nil))]
        }
    }

    mutating func recordingConsent(_ c: RecordingConsent, from sender: UInt16) -> [Action] {
        guard let own = recording.own, c.recordingID == own.id, c.recorder == index else { return [] }
        guard c.member == sender, c.roomID == roomID, let entry = verifiedEntry(sender), c.isSigned(by: entry.identity.signingKey) else {
            return [.event(.keyRejected("a recording consent from #\(sender) that is not signed by that member of the verified roster"))]
        }
        // The first answer per member counts. An index that once held another identity is
        // never recorded again: the file has one MEMBER record per index, and indices are
        // never reused (5.2), so this is a relay reseating someone.
        if let earlier = own.consented[sender] ?? own.declined[sender] {
            guard earlier != entry.identity else { return [] }
            return [.event(.alert(.identityMismatch, "#\(sender) now answers with another identity than the one that answered before; it is not recorded"))]
        }
        switch c.decision {
        case .consent:
            recording.own?.consented[sender] = entry.identity
            return [
                .recording(.member(index: sender, identity: entry.identity, displayName: entry.displayName, consent: c)),
                .event(.recordingConsent(member: sender, consent: true)),
            ]
        case .decline:
            recording.own?.declined[sender] = entry.identity
            return [.event(.recordingConsent(member: sender, consent: false))]
        }
    }

    // MARK: Rights

    /// Leader: gives or takes the right to record (flag bit 2 of the signed roster).
    public mutating func setRecorder(_ member: UInt16, _ granted: Bool, now: UInt64) -> [Action] {
        guard leader != nil else { return [.event(.recordingRefused("only the host gives or takes the right to record"))] }
        return leaderUpdate(MemberUpdate(index: member, recorder: granted), now: now)
    }
}
