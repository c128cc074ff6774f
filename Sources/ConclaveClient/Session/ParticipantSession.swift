import ConclaveCrypto
import ConclaveProtocol

/// One participant's meeting logic as a value: what it does with each relay message, user
/// command and clock tick, returned as ``Action``s for a driver to carry out.
///
/// No I/O, no tasks, no clock of its own and no randomness of its own: every input carries
/// `now` (milliseconds on the driver's monotonic clock), and the leader's fresh epoch
/// secrets come from ``Configuration/random``. The end-to-end rules of 3.6 live here: the
/// admission authority (a key only for a knock the leader opened and decided), moderation
/// requests signed end to end, the heartbeat and the leader-silence timers, and the checks
/// of every relay event against the signed roster. ``Participant`` is the driver that
/// talks to a real relay; tests drive sessions in memory against a simulated, hostile one.
public struct ParticipantSession: Sendable {
    /// What a driver does for the session, in the order returned.
    public enum Action: Sendable {
        /// Send on the WebSocket, after everything returned before (one ordered stream).
        case send(ClientMessage)
        /// A media, chat or screen frame that opened: play, show or reassemble it.
        case deliver(ReceivedFrame)
        case event(SessionEvent)
        /// Call ``tick(now:)`` at (or soon after) this time.
        case wake(at: UInt64)
        /// The relay offered a UDP media path (6.2).
        case openMediaPath(MediaSessionMessage)
        /// The session is over (a fatal relay error).
        case end
        /// This client's recording file (3.8).
        case recording(RecordingAction)
    }

    /// A received frame's fate (``receiveFrame(_:now:)``): the frame to deliver, if it is
    /// media, chat or screen and opened; why it was dropped; and what else followed.
    public struct FrameOutcome: Sendable {
        public var opened: ReceivedFrame?
        public var dropped: ReceiveDrop?
        /// Dropped because it was sealed before this client was admitted (not a failure).
        public var beforeJoin = false
        public var actions: [Action] = []
        /// For an `unknownEpoch` drop after admission: the epochs involved, so that a load
        /// run can tell a key that never arrived from one erased too early.
        public var unknownEpoch: UnknownEpochDrop?
    }

    /// The epochs behind one `unknownEpoch` drop (diagnostics; no key material).
    public struct UnknownEpochDrop: Sendable, Hashable {
        /// The epoch the frame was sealed under.
        public var frameEpoch: UInt64
        /// The first epoch this client held, its current one, and the oldest it still retains.
        public var firstEpoch: UInt64
        public var currentEpoch: UInt64
        public var oldestRetained: UInt64?

        public init(frameEpoch: UInt64, firstEpoch: UInt64, currentEpoch: UInt64, oldestRetained: UInt64?) {
            self.frameEpoch = frameEpoch
            self.firstEpoch = firstEpoch
            self.currentEpoch = currentEpoch
            self.oldestRetained = oldestRetained
        }
    }

    public struct Configuration: Sendable {
        public var displayName: String
        /// Leader: admit every knock at once.
        public var autoAdmit = false
        /// Ask the relay to unmute as soon as admitted.
        public var unmuteOnJoin = false
        public var rotationIntervalMillis: UInt64?
        public var heartbeatIntervalMillis: UInt64 = Heartbeat.interval
        public var leaderSilenceTimeoutMillis: UInt64 = Heartbeat.silenceTimeout
        public var admissionBatchMillis: UInt64 = 0
        /// How this member answers recording notices (3.8): ask its user by default.
        public var recordingConsent = RecordingConsentPolicy.ask
        /// Leader of a room moved to another relay node (5.10): identities (Ed25519 public
        /// keys) that were members before the move and are admitted again when they knock.
        public var readmit: Set<[UInt8]> = []
        /// Leader of a moved room: identities removed before the move, denied when they knock.
        public var refuse: Set<[UInt8]> = []
        /// 32 fresh random bytes per call: the leader's epoch secrets.
        public var random: @Sendable () -> SecretKey = { SecretKey.random(count: 32) }

        public init(displayName: String) { self.displayName = displayName }
    }

    /// Alerts and rejections kept for inspection (the oldest half goes when full).
    static let retainedReports = 1_024
    /// The most knocks a leader accepts in one meeting (bounds ``seenKnockNonces``).
    public static let maximumKnocksPerMeeting = 65_536
    /// Co-host: the most leader's knock notices held for knocks the relay has not reported
    /// yet (``earlyKnockNotices``); one more is rejected.
    public static let maximumEarlyKnockNotices = 64
    /// Leader: how long a relay-admitted knocker whose admission a co-host made at the
    /// relay waits for that co-host's signed request.
    public static let approvalWaitMillis: UInt64 = 5_000

    public let roomID: RoomID
    public let identity: PrivateIdentity
    public private(set) var index: UInt16
    public private(set) var invite: Invite?
    public let configuration: Configuration
    public internal(set) var e2e: E2ESession
    public private(set) var admitted: Bool
    /// An epoch is installed (not provisionally).
    public private(set) var hasKeys = false
    /// The relay's mute state for this client.
    public private(set) var mutedSelf = true

    /// Identities as the relay reports them.
    var relayIdentities: [UInt16: PublicIdentity] = [:]
    /// Leader: knocks opened and not yet decided (for KNOCK_NOTICEs to co-hosts).
    var pendingKnocks: [UInt16: (identity: PublicIdentity, name: String)] = [:]
    /// Leader: every knock it opened and verified, by waiting index (4.2).
    var openedKnocks: [UInt16: Knock] = [:]
    /// Leader: indices whose admission its user (or its local policy) decided (3.6 A).
    var approved: [UInt16: [UInt8]] = [:]
    /// Leader: admissions decided and checked, waiting to be keyed together.
    var pendingAdmissions: [SignedRoster.Entry] = []
    /// Leader: when the pending admissions are keyed.
    var admissionFlushAt: UInt64?
    /// Leader: join nonces of every knock accepted so far; a repeat is a replay (4.2).
    var seenKnockNonces: Set<[UInt8]> = []
    /// Leader: relay-admitted knockers a co-host admitted at the relay, waiting for its
    /// signed request.
    var awaitingApproval: [UInt16: (identity: PublicIdentity, role: Role, since: UInt64)] = [:]
    /// Leader: the highest moderation-request sequence seen from each co-host.
    var requestSequences: [UInt16: UInt32] = [:]
    /// Co-host: the sequence of this client's last moderation request.
    var ownRequestSequence: UInt32 = 0
    /// Leader: the room has no waiting room, so a verified knock is admitted by the
    /// leader's own policy (the relay admits such joiners at once).
    var admitsWithoutWaitingRoom = false
    /// The invite secret (4.1): the leader checks knocks' invite proofs with it.
    var inviteSecret: [UInt8] = []
    /// This participant's join nonce (4.2).
    var joinNonce: [UInt8] = []
    /// Member: when the leader's last verified heartbeat (or the first keys) arrived.
    var lastLeaderSignOfLife: UInt64 = 0
    /// Member: the leader fell silent and no successor could take over.
    public private(set) var leaderSilentReported = false
    /// Member: since when the leader's heartbeats announce an epoch or roster we lack.
    var behindSince: UInt64?
    /// Member: the newest epoch and roster version the leader's verified heartbeats
    /// announced, and the newest epoch seen on its (unauthenticated) frames.
    var announcedEpoch: UInt64 = 0
    var announcedVersion: UInt32 = 0
    var epochSeenOnFrames: UInt64 = 0
    /// Member: the stale-keys alert was raised (and sending stopped) for the current lag.
    public private(set) var staleReported = false
    /// Co-host: identities the relay reported in KNOCKs, to check the leader's notices against.
    var relayKnocks: [UInt16: PublicIdentity] = [:]
    /// Co-host: verified notices from the leader that arrived before the relay's KNOCK for
    /// their index, held until it comes (3.6). The notice and the KNOCK reach the co-host
    /// by different routes (the leader's frame; the relay's own message, which follows the
    /// relay's co-host role), so the notice can overtake it. At most
    /// ``maximumEarlyKnockNotices``; dropped when the index is seated or leaves.
    var earlyKnockNotices: [UInt16: (identity: PublicIdentity, name: String)] = [:]
    /// Member: the successor the relay named host while the leader was not known to be
    /// gone; a later heartbeat from the leader makes that a reported disagreement.
    var relayClaimedHost: UInt16?
    /// The leader's verified roster removed this member (whatever the relay says).
    public private(set) var removedEndToEnd = false
    /// The fatal relay error that ended the session, if one did.
    public private(set) var endedBy: ErrorCode?
    /// Relay request ids.
    var nextRequest: UInt16 = 0
    /// The first epoch this client held, and frames sealed under older ones.
    var firstEpoch: UInt64?
    public private(set) var framesBeforeJoin = 0
    /// Recordings: this client's own, and those others announced (3.8).
    var recording = RecordingSessionState()
    /// Leader: the identity it admitted at each index (indices are never reused, 5.2).
    var seatedIdentities: [UInt16: PublicIdentity] = [:]

    public var leader: LeaderKeySchedule? {
        get { e2e.leader }
        set { e2e.leader = newValue }
    }
    public var member: MemberKeySchedule? {
        get { e2e.member }
        set { e2e.member = newValue }
    }

    // MARK: - Starting

    /// A joiner, right after its `JOIN` (its knock carried `joinNonce`).
    public init(
        roomID: RoomID, index: UInt16, identity: PrivateIdentity, invite: Invite?, joinNonce: [UInt8],
        configuration: Configuration
    ) {
        self.roomID = roomID
        self.index = index
        self.identity = identity
        self.invite = invite
        self.inviteSecret = invite?.secret ?? []
        self.joinNonce = joinNonce
        self.configuration = configuration
        self.admitted = false
        self.e2e = E2ESession(roomID: roomID, me: index, identity: identity)
    }

    /// The host of a room it created: the leader of epoch 1 (3.2), presenter (5.5).
    public static func host(
        roomID: RoomID, index: UInt16, identity: PrivateIdentity, invite: Invite, waitingRoom: Bool,
        configuration: Configuration, now: UInt64
    ) throws -> (ParticipantSession, [Action]) {
        var s = ParticipantSession(roomID: roomID, index: index, identity: identity, invite: invite, joinNonce: [], configuration: configuration)
        s.admitted = true
        s.admitsWithoutWaitingRoom = !waitingRoom
        s.relayIdentities[index] = identity.publicIdentity
        var l = LeaderKeySchedule(
            roomID: roomID, me: index, identity: identity, displayName: configuration.displayName,
            random: configuration.random)
        if let interval = configuration.rotationIntervalMillis { l.rotationInterval = interval }
        l.heartbeatInterval = configuration.heartbeatIntervalMillis
        var actions = try l.start(now: now)
        actions += try l.updateRoster([MemberUpdate(index: index, presenter: true)])
        s.leader = l
        let out = try s.perform(actions, now: now)
        s.mutedSelf = false  // the room's creator enters unmuted (relay policy, 5.5)
        return (s, out)
    }

    // MARK: - Queries

    /// The current security code, if keys are in place.
    public var securityCode: String? { e2e.securityCode?.description }

    /// A member's name from the verified roster, else `#index`.
    public func name(of i: UInt16) -> String {
        if let n = member?.displayName(of: i), !n.isEmpty { return n }
        if let n = leader?.entries.first(where: { $0.index == i })?.displayName, !n.isEmpty { return n }
        return "#\(i)"
    }

    /// A peer's identity from the verified roster (never the relay's roster alone, 2.7).
    public func peerIdentity(_ i: UInt16) -> PublicIdentity? {
        if let l = leader { return l.entries.first { $0.index == i }?.identity }
        return member?.members.first { $0.index == i }?.identity
    }

    /// Whether the verified roster lets `sender` share the screen (2.6).
    public func isPresenter(_ sender: UInt16) -> Bool {
        leader.map { $0.entries.first { $0.index == sender }?.presenter ?? false } ?? member?.isPresenter(sender) ?? false
    }

    /// Members of the verified roster besides this one exist.
    public var hasOthers: Bool { leader.map { $0.entries.count > 1 } ?? ((member?.roster?.entries.count ?? 0) > 1) }

    /// The verified roster as (index, name, role); the role is known while leading.
    public var roster: [(index: UInt16, name: String, role: String)] {
        if let l = leader { return l.entries.map { ($0.index, $0.displayName, $0.role.name) } }
        return (member?.members ?? []).map { ($0.index, name(of: $0.index), "") }
    }

    /// Whether a frame sealed now would go out under an epoch.
    public func canSeal(now: UInt64) -> Bool { hasKeys && !removedEndToEnd && e2e.sender.sendingEpoch(at: now) != nil }

    /// Audio may go out: admitted, keyed, unmuted at the relay, and not cut off from a live
    /// leader (3.6: a member that is stale or lost its leader stops sending).
    public func maySendAudio(now: UInt64) -> Bool {
        admitted && !mutedSelf && !leaderSilentReported && !staleReported && canSeal(now: now)
    }

    /// Seals a frame of this client's own (audio, chat, screen) as it goes to the relay.
    public mutating func seal(
        _ kind: FrameKind, to recipient: ParticipantIndex, plaintext: [UInt8], now: UInt64,
        epoch: SenderKeyState.EpochChoice = .scheduled
    ) throws -> FrameMessage {
        let payload = try e2e.sender.seal(kind: kind, recipient: recipient, plaintext: plaintext, now: now, epoch: epoch)
        return try FrameMessage(kind: kind, sender: ParticipantIndex(index), recipient: recipient, payload: payload)
    }

    /// A chat line: broadcast under the newest epoch (a member whose key package is on its
    /// way buffers it, 3.3), or private under the pairwise key of 2.7.
    public mutating func chat(_ text: String, to recipient: UInt16?, now: UInt64) throws -> [Action] {
        let bytes = Array(text.utf8)
        guard (1...4000).contains(bytes.count) else { return [] }
        if let recipient {
            guard peerIdentity(recipient) != nil else { return [.event(.unknownParticipant(recipient))] }
            return [.send(.frame(try seal(.chat, to: ParticipantIndex(recipient), plaintext: bytes, now: now)))]
        }
        return [.send(.frame(try seal(.chat, to: .everyone, plaintext: bytes, now: now, epoch: .newest)))]
    }

    // MARK: - Relay messages

    /// A message from the relay other than a `FRAME` (``receiveFrame(_:now:)``).
    public mutating func receive(_ message: RelayMessage, now: UInt64) -> [Action] {
        switch message {
        case .admitted(let a):
            var out = admittedByRelay(a, now: now)
            if configuration.unmuteOnJoin { out += command(.unmuteSelf, now: now) }
            return out
        case .knock(let k):
            return knock(k, now: now)
        case .event(let e):
            return event(e, now: now)
        case .frame(let f):
            var outcome = receiveFrame(f, now: now)
            if let frame = outcome.opened { outcome.actions.append(.deliver(frame)) }
            return outcome.actions
        case .error(let e):
            var out: [Action]
            switch e.code {
            case .ended: out = [.event(.ended("the host ended the meeting"))]
            case .denied: out = [.event(.denied)]
            default: out = [.event(.relayError(code: e.code.name, message: e.message))]
            }
            if e.isFatal {
                endedBy = e.code
                out.append(.end)
            }
            return out
        case .mediaSession(let session):
            return [.openMediaPath(session)]
        case .commandOK, .pong, .welcome, .roomCreated, .waiting:
            return []
        case .redirect:
            // Where to connect is the driver's business (RelayHandshake follows a REDIRECT
            // that answers JOIN or CREATE_ROOM); nothing in the session depends on it.
            return []
        }
    }

    mutating func admittedByRelay(_ a: AdmittedMessage, now: UInt64) -> [Action] {
        // Admission happens once per session: a second ADMITTED (only a relay sends one)
        // would reset the member's key schedule and let old key packages in again.
        guard !admitted, leader == nil, member == nil else {
            return [.event(.alert(.unexpectedAdmission, "the relay sent ADMITTED again; ignored"))]
        }
        var out: [Action] = []
        index = a.index.rawValue
        admitted = true
        if e2e.me != index { e2e = E2ESession(roomID: roomID, me: index, identity: identity) }
        for entry in a.roster {
            relayIdentities[entry.index.rawValue] = try? PublicIdentity(entry.identity)
        }
        let host = a.roster.first { $0.role == .host }
        if let invite, let host, let hostIdentity = try? PublicIdentity(host.identity) {
            if hostIdentity != invite.hostIdentity {
                out.append(.event(.keyRejected("the room's host is not the one the invite names; key packages will be rejected")))
            }
            member = MemberKeySchedule(
                roomID: roomID, me: index, identity: identity, joinNonce: joinNonce,
                leaderIndex: host.index.rawValue, leaderIdentity: invite.hostIdentity)
            lastLeaderSignOfLife = now
        }
        mutedSelf = a.roster.first { $0.index == a.index }?.state.contains(.muted) ?? true
        out.append(.event(.admitted(index)))
        return out
    }

    mutating func knock(_ k: KnockMessage, now: UInt64) -> [Action] {
        guard let relayIdentity = try? PublicIdentity(k.identity) else { return [] }
        let i = k.index.rawValue
        let fingerprint = relayIdentity.fingerprint.displayString
        guard leader != nil else {
            relayKnocks[i] = relayIdentity
            var out: [Action] = [.event(.knock(index: i, name: nil, fingerprint: fingerprint, namedByHost: false))]
            if let early = earlyKnockNotices.removeValue(forKey: i) { out += knockNoticeChecked(i, early.identity, early.name) }
            return out
        }
        var out: [Action] = []
        let opened: Knock
        do {
            opened = try Knock.open(k.knock, host: identity, expectedRoom: roomID, relayIdentity: relayIdentity, inviteSecret: inviteSecret)
        } catch {
            let hint =
                (error as? KeyScheduleError) == .sealOpenFailed
                ? " (not sealed to this leader's key: an invite from before the keys moved, or a forgery)" : ""
            return [
                .event(.keyRejected("knock: \(error)")),
                .event(.alert(.knockRejected, "a knock for #\(i) [\(fingerprint)] did not verify: \(error)\(hint)")),
            ]
        }
        guard !seenKnockNonces.contains(opened.joinNonce) else {
            return [.event(.alert(.knockReplayed, "the relay replayed a knock from \(fingerprint) as #\(i)"))]
        }
        guard seenKnockNonces.count < Self.maximumKnocksPerMeeting else {
            return [.event(.alert(.tooManyKnocks, "this meeting has had \(Self.maximumKnocksPerMeeting) knocks; no more are accepted"))]
        }
        // One knock per waiting index: a second one at the same index (which only a relay
        // can present) never replaces the knock a decision was made about.
        guard openedKnocks[i] == nil else {
            return [.event(.alert(.knockReplaced, "the relay presented a second knock [\(fingerprint)] for #\(i); the first one stands"))]
        }
        seenKnockNonces.insert(opened.joinNonce)
        openedKnocks[i] = opened
        pendingKnocks[i] = (relayIdentity, opened.displayName)
        out += knockNotices(for: [i], to: leader?.entries.filter { $0.role == .cohost }.map(\.index) ?? [], now: now)
        out.append(.event(.knock(index: i, name: opened.displayName, fingerprint: fingerprint, namedByHost: false)))
        let key = relayIdentity.signingKey.rawRepresentation
        if configuration.refuse.contains(key) {
            // Removed before the room moved: not let back in by the move.
            pendingKnocks[i] = nil
            out += command(admitsWithoutWaitingRoom ? .remove(k.index) : .deny(k.index), now: now)
        } else if admitsWithoutWaitingRoom {
            approved[i] = opened.joinNonce  // the relay admits it at once; the leader's policy keys it
        } else if configuration.autoAdmit || configuration.readmit.contains(key) {
            out += command(.admit(k.index), now: now)
        }
        return out
    }

    mutating func event(_ e: EventMessage, now: UInt64) -> [Action] {
        var out: [Action] = []
        switch e.event {
        case .joined(let i, let wireIdentity, let role):
            pendingKnocks[i.rawValue] = nil
            relayKnocks[i.rawValue] = nil
            earlyKnockNotices[i.rawValue] = nil
            guard let id = try? PublicIdentity(wireIdentity) else { return [] }
            relayIdentities[i.rawValue] = id
            out.append(.event(.joined(i.rawValue, fingerprint: id.fingerprint.displayString)))
            if leader != nil { out += leaderAdmits(i.rawValue, relayIdentity: id, relayRole: role, actor: e.actor.rawValue, now: now) }
        case .left(let i, let reason):
            out += memberGone(i.rawValue, reason: reason.name, now: now)
        case .removed(let i):
            out += memberGone(i.rawValue, reason: "removed", now: now)
        case .muted(let i):
            if i.rawValue == index { mutedSelf = true }
            out += leaderUpdate(MemberUpdate(index: i.rawValue, muted: true), now: now)
            out.append(.event(.muted(i.rawValue)))
        case .unmuted(let i):
            if i.rawValue == index { mutedSelf = false }
            out += leaderUpdate(MemberUpdate(index: i.rawValue, muted: false), now: now)
            out.append(.event(.unmuted(i.rawValue)))
        case .locked: out.append(.event(.locked))
        case .unlocked: out.append(.event(.unlocked))
        case .recording(let on): out.append(.event(.recording(on)))
        case .roleChanged(let i, let role):
            // The relay's roles steer its own rules; the signed roster changes only by the
            // leader's decisions (3.6). A disagreement is shown, never signed.
            if let l = leader, let entry = l.entries.first(where: { $0.index == i.rawValue }), entry.role != role,
                !(i.rawValue == index && role == .host)
            {
                out.append(.event(.alert(.relayRoleMismatch, "the relay says #\(i.rawValue) is \(role.name); the signed roster says \(entry.role.name)")))
            } else if leader == nil, role == .host, var m = member {
                let actions = m.relayReportedHost(i.rawValue)
                member = m
                // The successor is what the relay's own rule names when the leader leaves,
                // so it is not reported yet; the leader's next signed heartbeat shows
                // whether the leader is in fact gone.
                relayClaimedHost = actions.isEmpty && i.rawValue != m.leaderIndex ? i.rawValue : nil
                out += absorb(e2e.apply(actions, now: now), now: now)
            } else if leader == nil, i.rawValue == index, role == .host {
                out.append(.event(.alert(.relayRoleMismatch, "the relay says this participant is host, without an end-to-end handover")))
            }
            out.append(.event(.role(i.rawValue, role)))
        case .presenterChanged(let i, let granted):
            if let l = leader, let entry = l.entries.first(where: { $0.index == i.rawValue }), entry.presenter != granted {
                out.append(
                    .event(.alert(.relayRoleMismatch, "the relay says #\(i.rawValue) \(granted ? "may" : "may not") share; the signed roster disagrees")))
            }
            out.append(.event(.presenter(i.rawValue, granted: granted)))
        case .waitingLeft(let i), .waitingDecided(let i, false):
            pendingKnocks[i.rawValue] = nil
            relayKnocks[i.rawValue] = nil
            earlyKnockNotices[i.rawValue] = nil
            openedKnocks[i.rawValue] = nil
            approved[i.rawValue] = nil
            awaitingApproval[i.rawValue] = nil
        case .waitingDecided(let i, true):
            pendingKnocks[i.rawValue] = nil
            relayKnocks[i.rawValue] = nil
            earlyKnockNotices[i.rawValue] = nil
        case .unmuteRequested:
            out.append(.event(.unmuteRequested))
        default:
            break
        }
        return out
    }

    // MARK: - Frames

    /// A `FRAME` from the relay: key material, a control message for the key schedule or
    /// (while leading) a moderation request, or a media, chat or screen frame to deliver.
    /// A frame that opens comes back in ``FrameOutcome/opened`` with no actions: the
    /// per-frame path allocates nothing more.
    public mutating func receiveFrame(_ f: FrameMessage, now: UInt64) -> FrameOutcome {
        let header = f.header
        if header.kind == .keys {
            return FrameOutcome(actions: absorb(e2e.receiveKeys(f.payload, from: header.sender.rawValue, now: now), now: now))
        }
        let (result, outputs) = e2e.receive(header: header, payload: f.payload, now: now)
        switch result {
        case .opened(let frame):
            if frame.header.kind == .control { return FrameOutcome(actions: absorb(outputs, now: now)) }
            return FrameOutcome(opened: frame)
        case .buffered, .dropped(.noKey), .dropped(.unknownEpoch):
            // The leader sends under an epoch we do not hold: we are behind (a withheld key
            // package). Unauthenticated: it may mark us behind, never prove the leader alive.
            if leader == nil, let m = member, header.sender.rawValue == m.leaderIndex,
                let e = Self.epoch(of: f.payload), e > (m.epoch ?? 0)
            {
                epochSeenOnFrames = max(epochSeenOnFrames, e)
                if behindSince == nil { behindSince = now }
            }
        default: break
        }
        guard case .dropped(let reason) = result else { return FrameOutcome() }
        // A frame under an epoch from before we were admitted is not a failure: a late
        // joiner must not be able to read it (the join ratchet). Counted apart.
        if reason == .unknownEpoch, let epoch = Self.epoch(of: f.payload), epoch < (firstEpoch ?? .max) {
            framesBeforeJoin += 1
            return FrameOutcome(dropped: reason, beforeJoin: true)
        }
        var outcome = FrameOutcome(dropped: reason)
        if reason == .unknownEpoch, let epoch = Self.epoch(of: f.payload) {
            outcome.unknownEpoch = UnknownEpochDrop(
                frameEpoch: epoch, firstEpoch: firstEpoch ?? 0, currentEpoch: e2e.ring.currentEpoch ?? 0,
                oldestRetained: e2e.ring.retainedPreviousEpochs.last)
        }
        return outcome
    }

    static func epoch(of sframe: [UInt8]) -> UInt64? {
        guard let (header, _) = try? SFrameHeader.decode(sframe) else { return nil }
        return EpochKeys.split(keyID: header.keyID).epoch
    }

    /// Leader: a control frame from a member. Only moderation requests are for it.
    mutating func leaderControl(_ frame: ReceivedFrame, now: UInt64) -> [Action] {
        switch Result(catching: { () throws(E2EControlError) in try E2EControlMessage.decode(frame.plaintext) }) {
        case .success(.moderationRequest(let r)):
            return leaderHandles(r, from: frame.sender, now: now)
        case .failure(.unknownType):
            return []  // reserved types are dropped silently (3.6)
        case .failure(let error):
            return [.event(.alert(.requestRejected, "a control message from #\(frame.sender) did not parse: \(error)"))]
        case .success:
            // Another leader's ROSTER, HANDOVER or HEARTBEAT: someone else claims the keys.
            return [.event(.alert(.historyDiffers, "#\(frame.sender) sent leader messages while this client holds the keys; compare security codes"))]
        }
    }

    // MARK: - User commands

    /// A user's command: as leader, the decisions that the signed roster carries take
    /// effect end to end at once, whatever the relay later reports (3.6); as co-host, the
    /// leader gets a signed request. The relay command follows.
    public mutating func command(_ action: CommandAction, now: UInt64) -> [Action] {
        var out = leader != nil ? leaderDecides(action, now: now) : requestFromLeader(action, now: now)
        nextRequest &+= 1
        out.append(.send(.command(CommandMessage(requestID: nextRequest, action: action))))
        // After the command: the relay then sends the new co-host its KNOCKs before it
        // forwards these notices, which the co-host checks against them.
        if leader != nil, case .promoteCohost(let i) = action {
            out += knockNotices(for: Array(pendingKnocks.keys).sorted(), to: [i.rawValue], now: now)
        }
        return out
    }

    /// Leaving: a leader hands the keys to the signed roster's successor first (3.6).
    public mutating func leave(now: UInt64) -> [Action] {
        var out = handOverLeadership(to: nil, now: now)
        out.append(.send(.command(CommandMessage(requestID: 0xFFFF, action: .leave))))
        return out
    }

    mutating func leaderDecides(_ action: CommandAction, now: UInt64) -> [Action] {
        switch action {
        case .admit(let i):
            // The decision is about the knock the user saw: its join nonce, not the index.
            guard let knock = openedKnocks[i.rawValue] else {
                return [.event(.alert(.notAdmitted, "#\(i.rawValue) has no knock the leader opened; nothing to admit end to end"))]
            }
            approved[i.rawValue] = knock.joinNonce
            if let waiting = awaitingApproval.removeValue(forKey: i.rawValue) {
                return leaderAdmits(i.rawValue, relayIdentity: waiting.identity, relayRole: waiting.role, now: now)
            }
            return []
        case .deny(let i):
            approved[i.rawValue] = nil
            return []
        case .remove(let i):
            approved[i.rawValue] = nil
            return leaderRemoves(i.rawValue, now: now)
        case .promoteCohost(let i): return leaderUpdate(MemberUpdate(index: i.rawValue, role: .cohost, presenter: true), now: now)
        case .demoteCohost(let i): return leaderUpdate(MemberUpdate(index: i.rawValue, role: .participant, presenter: false), now: now)
        case .grantShare(let i): return leaderUpdate(MemberUpdate(index: i.rawValue, presenter: true), now: now)
        case .revokeShare(let i): return leaderUpdate(MemberUpdate(index: i.rawValue, presenter: false), now: now)
        case .transferHost(let i): return handOverLeadership(to: i.rawValue, now: now)
        default: return []
        }
    }

    /// Co-host: a moderation decision the signed roster reflects goes to the leader too,
    /// signed end to end (3.6 MODERATION_REQUEST); the relay command alone keys no one.
    mutating func requestFromLeader(_ action: CommandAction, now: UInt64) -> [Action] {
        guard let m = member, m.roster?.entry(for: index)?.role == .cohost else { return [] }
        let request: (ModerationRequest.Action, UInt16)
        switch action {
        case .admit(let i): request = (.admit, i.rawValue)
        case .remove(let i): request = (.remove, i.rawValue)
        case .grantShare(let i): request = (.grantShare, i.rawValue)
        case .revokeShare(let i): request = (.revokeShare, i.rawValue)
        default: return []
        }
        let target = request.0 == .admit ? relayKnocks[request.1] : m.roster?.entry(for: request.1)?.identity
        guard let target else { return [] }
        ownRequestSequence &+= 1
        let signed = ModerationRequest.sign(
            roomID: roomID, requester: index, sequence: ownRequestSequence, action: request.0,
            target: request.1, targetIdentity: target, by: identity.signingKey)
        guard let frame = try? seal(.control, to: ParticipantIndex(m.leaderIndex), plaintext: signed.encoded, now: now, epoch: .newest) else { return [] }
        return [.send(.frame(frame))]
    }

    /// Leader: a co-host's signed request (3.6). It counts only from a co-host of the signed
    /// roster, signed by that co-host's key, fresh, and naming the identity the leader
    /// knows for the target (the knock's for an admission, the roster's otherwise).
    mutating func leaderHandles(_ r: ModerationRequest, from sender: UInt16, now: UInt64) -> [Action] {
        guard let l = leader else { return [] }
        guard r.requester == sender, let requester = l.entries.first(where: { $0.index == sender }), requester.role == .cohost,
            r.roomID == roomID, r.isSigned(by: requester.identity.signingKey)
        else {
            return [.event(.alert(.requestRejected, "a moderation request from #\(sender) is not signed by a co-host of the signed roster"))]
        }
        guard r.sequence > (requestSequences[sender] ?? 0) else {
            return [.event(.alert(.requestRejected, "a moderation request from #\(sender) was replayed"))]
        }
        requestSequences[sender] = r.sequence
        switch r.action {
        case .admit:
            guard let knock = openedKnocks[r.target], knock.identity == r.targetIdentity else {
                return [.event(.alert(.requestRejected, "#\(sender) asked to admit #\(r.target), whose knock the leader did not open with that identity"))]
            }
            approved[r.target] = knock.joinNonce
            if let waiting = awaitingApproval.removeValue(forKey: r.target) {
                return leaderAdmits(r.target, relayIdentity: waiting.identity, relayRole: waiting.role, now: now)
            }
            return []
        case .remove, .grantShare, .revokeShare:
            guard let entry = l.entries.first(where: { $0.index == r.target }), entry.identity == r.targetIdentity, entry.role != .host else {
                return [
                    .event(
                        .alert(.requestRejected, "#\(sender) asked to \(r.action.name) #\(r.target), which the signed roster does not hold with that identity"))
                ]
            }
            switch r.action {
            case .remove:
                approved[r.target] = nil
                return leaderRemoves(r.target, now: now)
            case .grantShare: return leaderUpdate(MemberUpdate(index: r.target, presenter: true), now: now)
            default: return leaderUpdate(MemberUpdate(index: r.target, presenter: false), now: now)
            }
        }
    }

    /// Host: tells co-hosts, end to end and signed, who is knocking (3.6 KNOCK_NOTICE).
    mutating func knockNotices(for indices: [UInt16], to cohosts: [UInt16], now: UInt64) -> [Action] {
        guard leader != nil, !cohosts.isEmpty else { return [] }
        var out: [Action] = []
        for i in indices {
            guard let knock = pendingKnocks[i],
                let notice = try? KnockNotice.sign(
                    roomID: roomID, waitingIndex: i, identity: knock.identity, displayName: knock.name,
                    leader: identity.signingKey)
            else { continue }
            for cohost in cohosts {
                if let frame = try? seal(.control, to: ParticipantIndex(cohost), plaintext: notice.encoded, now: now, epoch: .newest) {
                    out.append(.send(.frame(frame)))
                }
            }
        }
        return out
    }

    // MARK: - Admission authority

    /// Admission authority (3.6): the leader keys `i` only if it opened and verified a fresh
    /// knock from exactly the identity the relay reports, and its user or its own policy
    /// decided to admit it. Anything else is an alert, with no roster entry and no key.
    mutating func leaderAdmits(_ i: UInt16, relayIdentity id: PublicIdentity, relayRole: Role, actor: UInt16 = 0, now: UInt64) -> [Action] {
        guard let l = leader else { return [] }
        guard l.entries.first(where: { $0.index == i }) == nil, !pendingAdmissions.contains(where: { $0.index == i }) else {
            return [.event(.alert(.unauthorizedJoin, "the relay announced #\(i) again"))]
        }
        guard let knock = openedKnocks[i] else {
            return [.event(.alert(.unauthorizedJoin, "the relay announced #\(i) [\(id.fingerprint.displayString)] joined without a knock the leader opened"))]
        }
        guard knock.identity == id else {
            return [
                .event(
                    .alert(
                        .identityMismatch,
                        "the relay announced #\(i) with identity [\(id.fingerprint.displayString)], but its knock was from [\(knock.identity.fingerprint.displayString)]"
                    ))
            ]
        }
        guard let decided = approved[i], decided == knock.joinNonce else {
            // A co-host's admission reaches the relay and, signed end to end, the leader:
            // wait a little for the signed request; without it, no key.
            if let a = l.entries.first(where: { $0.index == actor }), a.role == .cohost {
                awaitingApproval[i] = (id, relayRole, now)
                return [.wake(at: now &+ Self.approvalWaitMillis &+ 1)]
            }
            return [.event(.alert(.notAdmitted, "the relay admitted #\(i) [\(id.fingerprint.displayString)], which the leader did not admit"))]
        }
        guard !l.entries.contains(where: { $0.identity == id }), !pendingAdmissions.contains(where: { $0.identity == id }) else {
            return [.event(.alert(.unauthorizedJoin, "the identity of #\(i) is already a member"))]
        }
        // Indices are never reused (5.2): a relay that seats a new identity at an index the
        // leader admitted before gets no key for it (members would refuse the roster too).
        if let earlier = seatedIdentities[i], earlier != id {
            return [
                .event(
                    .alert(
                        .identityMismatch,
                        "the relay seated [\(id.fingerprint.displayString)] at #\(i), which belonged to [\(earlier.fingerprint.displayString)]; indices are never reused"
                    ))
            ]
        }
        if seatedIdentities.count < Self.maximumKnocksPerMeeting { seatedIdentities[i] = id }
        openedKnocks[i] = nil
        approved[i] = nil
        var out: [Action] = []
        if relayRole != .participant {
            out.append(.event(.alert(.relayRoleMismatch, "the relay admitted #\(i) as \(relayRole.name); it joins the signed roster as participant")))
        }
        // Keyed with the admissions decided in the next few milliseconds: joins that arrive
        // together share one epoch change and one ROSTER (a large room's ramp). A large
        // room waits longer (half a millisecond per member, up to 250 ms): each change
        // sends every member a ROSTER that grows with the room.
        pendingAdmissions.append(
            SignedRoster.Entry(
                index: i, identity: id, role: .participant, muted: true, presenter: false,
                displayName: knock.displayName, joinNonce: knock.joinNonce))
        if admissionFlushAt == nil {
            let at = now &+ min(max(configuration.admissionBatchMillis, UInt64(l.entries.count / 2)), 250)
            admissionFlushAt = at
            out.append(.wake(at: at))
        }
        return out
    }

    /// Leader: keys the admissions decided since the last change, in one epoch change;
    /// with `removing`, the same change removes that member (a fresh secret).
    mutating func keyAdmissions(removing: UInt16? = nil, now: UInt64) -> [Action] {
        admissionFlushAt = nil
        var batch = pendingAdmissions.filter { $0.index != removing }
        pendingAdmissions = []
        guard var l = leader, !batch.isEmpty || removing != nil else { return [] }
        var out: [Action] = []
        let room = SignedRoster.maximumMembers - l.entries.count + (removing == nil ? 0 : 1)
        if batch.count > room {
            for e in batch.dropFirst(max(0, room)) {
                out.append(.event(.alert(.roomFull, "#\(e.index) cannot join the signed roster: it lists at most \(SignedRoster.maximumMembers) members")))
            }
            batch = Array(batch.prefix(max(0, room)))
        }
        do {
            let actions = try l.changeMembership(admit: batch, remove: removing.map { [$0] } ?? [], now: now)
            leader = l
            out += try perform(actions, now: now)
        } catch {
            out.append(.event(.failure("rekey failed: \(error)")))
        }
        return out
    }

    /// Leader: removes `i` from the signed roster with a fresh epoch at once; admissions
    /// waiting for their batch go in the same change.
    mutating func leaderRemoves(_ i: UInt16, now: UInt64) -> [Action] {
        pendingAdmissions.removeAll { $0.index == i }
        guard let l = leader, l.entries.contains(where: { $0.index == i }) else { return [] }
        return keyAdmissions(removing: i, now: now)
    }

    /// The leader mirrors role, presenter and mute changes into the signed roster.
    mutating func leaderUpdate(_ update: MemberUpdate, now: UInt64) -> [Action] {
        guard var l = leader, l.entries.contains(where: { $0.index == update.index }) else { return [] }
        do {
            let actions = try l.updateRoster([update])
            leader = l
            return try perform(actions, now: now)
        } catch {
            return [.event(.failure("roster update failed: \(error)"))]
        }
    }

    mutating func memberGone(_ i: UInt16, reason: String, now: UInt64) -> [Action] {
        relayIdentities[i] = nil
        openedKnocks[i] = nil
        approved[i] = nil
        awaitingApproval[i] = nil
        // A departure the relay reports can only shrink who holds keys: rekey at once.
        return [.event(.left(i, reason: reason))] + leaderRemoves(i, now: now)
    }

    // MARK: - Leadership

    /// Hands the keys over as leader: a signed HANDOVER naming `chosen` (or, leaving, the
    /// member the signed roster names as successor); this client then follows it (3.6).
    mutating func handOverLeadership(to chosen: UInt16?, now: UInt64) -> [Action] {
        guard leader != nil else { return [] }
        var out: [Action] = []
        // Admissions already decided are keyed before the keys go.
        if !pendingAdmissions.isEmpty { out += keyAdmissions(now: now) }
        guard var l = leader else { return out }
        let successor = chosen ?? (l.successor != 0 ? l.successor : nil)
        guard let successor, successor != index, l.entries.contains(where: { $0.index == successor }) else {
            if let chosen { out.append(.event(.alert(.notAMember, "#\(chosen) is not in the signed roster; the keys stay here"))) }
            return out
        }
        do {
            let (actions, m) = try l.handover(to: successor)
            leader = nil
            member = m
            // Leader-only state goes with the keys: nothing decided here stays live.
            openedKnocks = [:]
            approved = [:]
            awaitingApproval = [:]
            requestSequences = [:]
            admissionFlushAt = nil
            lastLeaderSignOfLife = now
            out += try perform(actions, now: now)
            out.append(.event(.handedOver(to: successor)))
        } catch {
            leader = l
            out.append(.event(.failure("handover failed: \(error)")))
        }
        return out
    }

    /// This member takes the keys over: after a verified HANDOVER naming it, or after the
    /// leader fell silent while the signed roster names it successor (3.6).
    mutating func takeOverLeadership(handover: Bool, now: UInt64) -> [Action] {
        guard let m = member else { return [] }
        let present = Set(m.members.map(\.index))
        let gone = present.filter { $0 != index && relayIdentities[$0] == nil }.sorted()
        do {
            var (l, actions) = try LeaderKeySchedule.takeOver(
                from: m, displayName: configuration.displayName,
                removing: gone + (handover ? [] : [m.leaderIndex]), now: now,
                random: configuration.random)
            l.heartbeatInterval = configuration.heartbeatIntervalMillis
            if let interval = configuration.rotationIntervalMillis { l.rotationInterval = interval }
            leader = l
            member = nil
            var out: [Action] = [.event(.leader(index, handover: handover))]
            // Knocks are sealed to the key the invite names: from now on, this client's.
            if let old = invite {
                let fresh = Invite(
                    secure: old.secure, host: old.host, port: old.port, roomID: roomID,
                    hostIdentity: identity.publicIdentity, secret: old.secret, password: old.password)
                invite = fresh
                out.append(.event(.invite(fresh.text)))
            }
            leaderSilentReported = false
            staleReported = false
            behindSince = nil
            return out + (try perform(actions, now: now))
        } catch {
            return [.event(.failure("taking over the keys failed: \(error)"))]
        }
    }

    // MARK: - Time

    /// What is due at `now`: admissions to key, rotation, the leader's heartbeat, the
    /// member's silence and staleness checks, co-host approvals that never came, and the
    /// wipe of old epochs after their grace (3.3), even in a quiet room.
    public mutating func tick(now: UInt64) -> [Action] {
        var out: [Action] = []
        if let at = admissionFlushAt, now >= at { out += keyAdmissions(now: now) }
        if var l = leader, let actions = try? l.rotateIfDue(now: now), !actions.isEmpty {
            leader = l
            out += (try? perform(actions, now: now)) ?? []
        }
        if var l = leader, let actions = try? l.heartbeatIfDue(now: now), !actions.isEmpty {
            leader = l
            out += (try? perform(actions, now: now)) ?? []
        }
        out += watchLeader(now: now)
        out += recordingTick(now: now)
        for (i, waiting) in awaitingApproval where now > waiting.since &+ Self.approvalWaitMillis {
            awaitingApproval[i] = nil
            out.append(
                .event(
                    .alert(
                        .notAdmitted, "the relay admitted #\(i) [\(waiting.identity.fingerprint.displayString)], and no signed request from a co-host followed")
                ))
        }
        e2e.ring.advance(to: now)
        return out
    }

    /// Member: behind for longer than the timeout, an alert and no sending; the leader's
    /// heartbeat silent past the timeout, leadership moves to the signed roster's successor
    /// (this client, or another member); without one, an alert once and no sending.
    mutating func watchLeader(now: UInt64) -> [Action] {
        var out: [Action] = []
        let timeout = configuration.leaderSilenceTimeoutMillis
        // Caught up since (a key package or roster arrived): no longer behind.
        if behindSince != nil, !isBehind {
            behindSince = nil
            staleReported = false
        }
        if leader == nil, let since = behindSince, !staleReported, now > since &+ timeout {
            staleReported = true
            out.append(
                .event(
                    .alert(
                        .staleKeys,
                        "the leader announced keys or a roster that did not reach us in \(timeout) ms; not sending under the old epoch"
                            + " (announced epoch \(max(announcedEpoch, epochSeenOnFrames)), roster version \(announcedVersion);"
                            + " held epoch \(member?.epoch ?? 0), roster version \(member?.roster?.rosterVersion ?? 0))")))
        }
        // A member that is behind may be cut off from a live leader (its heartbeats are
        // sealed under an epoch it lacks): it waits one more timeout before it treats the
        // leader as lost, and frames the relay could forge cannot stretch that further.
        let silence = behindSince == nil ? timeout : 2 &* timeout
        guard leader == nil, admitted, let m = member, now > lastLeaderSignOfLife &+ silence else { return out }
        guard m.epoch != nil, !m.awaitingRoster else {
            if !leaderSilentReported {
                leaderSilentReported = true
                out.append(.event(.alert(.keyWithheld, "no keys from the leader \(timeout) ms after admission")))
            }
            return out
        }
        if m.successor == index {
            // A successor that lacks the newest epoch or roster would fork the epochs.
            guard !behindSigned, m.roster?.epoch == m.epoch else {
                if !leaderSilentReported {
                    leaderSilentReported = true
                    out.append(.event(.alert(.leaderSilent, "the leader fell silent, and this successor lacks its newest keys; not taking over")))
                }
                return out
            }
            out.append(
                .event(.alert(.leaderLost, "the leader fell silent for \(timeout) ms; this client is the signed roster's successor and takes the keys over")))
            out += takeOverLeadership(handover: false, now: now)
            lastLeaderSignOfLife = now
            return out
        }
        var next = m
        let actions = next.leaderLost()
        if actions.isEmpty {
            if !leaderSilentReported {
                leaderSilentReported = true
                out.append(.event(.alert(.leaderSilent, "the leader fell silent for \(timeout) ms and the signed roster names no successor; not sending")))
            }
            return out
        }
        member = next
        return out + absorb(e2e.apply(actions, now: now), now: now)
    }

    /// Member: whether the leader announced (signed) an epoch or roster we do not hold.
    var behindSigned: Bool {
        guard let m = member else { return false }
        return announcedEpoch > (m.epoch ?? 0) || announcedVersion > (m.roster?.rosterVersion ?? 0)
    }

    /// Member: behind by the signed announcements or by frames seen under a newer epoch.
    var isBehind: Bool { behindSigned || epochSeenOnFrames > (member?.epoch ?? 0) }

    // MARK: - Key schedule glue

    /// Carries out a leader transition through ``E2ESession`` (sealed in order, installs
    /// applied where they stand) and reports what followed.
    mutating func perform(_ actions: [LeaderAction], now: UInt64) throws -> [Action] {
        absorb(try e2e.perform(actions, now: now), now: now)
    }

    /// Turns what ``E2ESession`` returned into actions, in order, with the member's
    /// key-schedule events handled here.
    mutating func absorb(_ outputs: [E2ESession.Output], now: UInt64) -> [Action] {
        var out: [Action] = []
        for output in outputs {
            switch output {
            case .send(let f):
                if let frame = try? FrameMessage(kind: f.kind, sender: ParticipantIndex(index), recipient: f.recipient, payload: f.payload) {
                    out.append(.send(.frame(frame)))
                }
            case .installed(let install):
                if firstEpoch == nil { firstEpoch = install.epoch }
                if install.mode != .provisional {
                    hasKeys = true
                    out.append(.event(.epoch(install.epoch, securityCode: securityCode ?? "")))
                }
            case .opened(let frame):
                if frame.header.kind == .control {
                    if Self.isRecordingControl(frame.plaintext) {
                        out += recordingControl(frame, now: now)
                    } else if leader != nil {
                        out += leaderControl(frame, now: now)
                    }
                } else {
                    out.append(.deliver(frame))
                }
            case .member(let action):
                out += memberAction(action, now: now)
            case .rejected(let reason):
                out.append(.event(.keyRejected("\(reason)")))
                switch reason {
                case .deltaBaseMismatch, .missedEpoch:
                    out.append(.event(.alert(.historyDiffers, "a roster or rekey was withheld from this client (\(reason)); compare security codes")))
                default: break
                }
            }
        }
        return out
    }

    /// One member key-schedule event (installs and removals are already applied).
    mutating func memberAction(_ action: MemberAction, now: UInt64) -> [Action] {
        switch action {
        case .install, .membersRemoved, .rosterChanged:
            return []
        case .leaderChanged(let i, _, let handover):
            lastLeaderSignOfLife = now
            relayClaimedHost = nil
            leaderSilentReported = false
            staleReported = false
            behindSince = nil
            announcedEpoch = 0
            announcedVersion = 0
            epochSeenOnFrames = 0
            var out: [Action] = []
            if !handover {
                out.append(
                    .event(
                        .alert(.leaderLost, "the leader fell silent; #\(i), the signed roster's successor, took the keys over; compare the new security code")))
            }
            if i == index { return out + takeOverLeadership(handover: handover, now: now) }
            return out + [.event(.leader(i, handover: handover))]
        case .relayHostDisagrees(let relayHost, let leader):
            return [.event(.alert(.relayRoleMismatch, "the relay says #\(relayHost) hosts; the keys are held by #\(leader)"))]
        case .heartbeat(let epoch, let version):
            lastLeaderSignOfLife = now
            leaderSilentReported = false
            var out: [Action] = []
            if let claimed = relayClaimedHost, let m = member, claimed != m.leaderIndex {
                relayClaimedHost = nil
                out.append(.event(.alert(.relayRoleMismatch, "the relay says #\(claimed) hosts, but the leader #\(m.leaderIndex) signed a heartbeat since")))
            }
            // Behind the leader (an epoch or roster it announced that we do not hold):
            // tolerated for the silence timeout, then an alert and no sending (3.6).
            announcedEpoch = max(announcedEpoch, epoch)
            announcedVersion = max(announcedVersion, version)
            if isBehind {
                if behindSince == nil { behindSince = now }
            } else {
                behindSince = nil
                staleReported = false
            }
            return out
        case .historyDiffers(let version):
            return [
                .event(
                    .alert(
                        .historyDiffers,
                        "the leader's roster history differs from ours at roster version \(version): a roster was withheld or the room is split; compare security codes"
                    ))
            ]
        case .heldMessageRejected(let reason):
            return [.event(.keyRejected("\(reason)"))]
        case .removedFromRoster(let version):
            removedEndToEnd = true
            if endedBy == nil { endedBy = .removed }
            return [.event(.removed(rosterVersion: version)), .end]
        case .successorClaimsKeys(let s):
            return [
                .event(
                    .alert(
                        .historyDiffers,
                        "#\(s), the signed roster's successor, acts as leader while the leader #\(member?.leaderIndex ?? 0) still signs heartbeats: the room is split; compare security codes"
                    ))
            ]
        case .knockNotice(let i, let id, let name):
            // Seated already (its knock was decided), or reported: checked now.
            guard relayKnocks[i] == nil, relayIdentities[i] == nil else { return knockNoticeChecked(i, id, name) }
            // The relay's KNOCK for it has not come yet: held until it does (3.6).
            guard earlyKnockNotices[i] != nil || earlyKnockNotices.count < Self.maximumEarlyKnockNotices else {
                return [.event(.keyRejected("knock notice for #\(i): \(Self.maximumEarlyKnockNotices) notices already wait for the relay's knocks"))]
            }
            earlyKnockNotices[i] = (id, name)
            return []
        }
    }

    /// A leader's knock notice against the identity the relay reported for its index.
    func knockNoticeChecked(_ i: UInt16, _ id: PublicIdentity, _ name: String) -> [Action] {
        guard relayKnocks[i] == id else {
            return [.event(.keyRejected("knock notice for #\(i) names an identity the relay did not report"))]
        }
        return [.event(.knock(index: i, name: name, fingerprint: id.fingerprint.displayString, namedByHost: true))]
    }
}
