import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol

/// What a participant does besides talking to the relay.
public struct ParticipantOptions: Sendable {
    public var displayName: String
    public var identity: PrivateIdentity
    public var tls: ClientTLS?
    /// Host: admit every knock at once.
    public var autoAdmit = false
    /// Audio to send (`tone:440`, `noise`, `silence`, or a WAV path).
    public var audioSource: AudioSourceSpec?
    /// Write the received mix here.
    public var recordPath: String?
    /// Chat lines to send once keys are in place.
    public var say: [String] = []
    /// Unmute as soon as admitted (the relay mutes on entry by default).
    public var unmuteOnJoin = false
    /// Leader: draw a fresh epoch secret this often (milliseconds; nil keeps the default).
    public var rotationIntervalMillis: UInt64?
    /// Write one WAV per sender here (`--record-dir`).
    public var recordDirectory: String?
    /// A file to share as screen frames once keys are in place (`--share`).
    public var sharePath: String?
    /// Save every completed share here as `share-<sender>-<id>.bin` (`--save-shares`).
    public var saveSharesDirectory: String?
    /// Called with every message exactly as the relay delivered it (for demos and tests
    /// that check what crossed the relay).
    public var inboundTap: (@Sendable (RelayMessage) -> Void)?
    /// How audio travels: `.udp` (the default) uses the relay's UDP media path when it
    /// offers one and the path answers, else the WebSocket; `.websocket` never opens it.
    public var mediaTransport: MediaTransport = .udp
    public var mediaPathOptions = MediaPath.Options()
    /// Milliseconds of leader heartbeat silence after which the roster's successor takes
    /// the keys over (3.6); tests shorten it.
    public var leaderSilenceTimeoutMillis: UInt64 = Heartbeat.silenceTimeout
    /// Leader: milliseconds it waits after deciding an admission so that admissions decided
    /// meanwhile share one epoch change and one `ROSTER`. A room waits at least half a
    /// millisecond per member (at most 250 ms): each change sends every member a `ROSTER`
    /// that grows with the room, so the larger the room, the more a batch saves.
    public var admissionBatchMillis: UInt64 = 0
    /// Milliseconds between the leader's heartbeats.
    public var heartbeatIntervalMillis: UInt64 = Heartbeat.interval
    /// Tests only: sees every frame this participant sends (what the relay receives).
    var outboundTap: (@Sendable (FrameMessage) -> Void)?
    /// Tests only: a relay→client message for which this returns true is dropped before the
    /// participant sees it, as a hostile relay would withhold it.
    var inboundDrop: (@Sendable (RelayMessage) -> Bool)?
    /// Load runs: observe audio and keys instead of decoding (see ``ParticipantProbe``).
    public var probe: (any ParticipantProbe)?
    /// The audio encoder's settings (bitrate, reused packets for load runs).
    public var audioSendConfiguration = AudioSendConfiguration()

    public init(displayName: String, identity: PrivateIdentity = .generate()) {
        self.displayName = displayName
        self.identity = identity
    }
}

/// How a participant's audio travels to the relay.
public enum MediaTransport: String, Sendable {
    case udp
    case websocket = "ws"
}

/// Counts for one sender's audio, reported once a second as the `audio` event.
public struct AudioReceiveStats: Sendable, Equatable {
    public var frames = 0
    public var lost = 0
    public var late = 0
    public var decryptFailed = 0
}

/// A participant's session: relay connection, end-to-end key schedule (as leader when it
/// hosts, as member otherwise), audio, chat and events.
///
/// The relay sees only what section 1 of the protocol allows: the display name travels in
/// the sealed knock and the signed, end-to-end encrypted roster; chat and audio in SFrame.
public actor Participant {
    public let connection: RelayConnection
    public let identity: PrivateIdentity
    public let roomID: RoomID
    public private(set) var index: UInt16
    public private(set) var invite: Invite?
    let options: ParticipantOptions
    let output: EventOutput
    let start = ContinuousClock.now

    // Key schedule: the end-to-end state and its rules live in ``E2ESession``; this actor
    // does the I/O, the timers and the user-facing events around it.
    var e2e: E2ESession
    var leader: LeaderKeySchedule? { get { e2e.leader } set { e2e.leader = newValue } }
    var member: MemberKeySchedule? { get { e2e.member } set { e2e.member = newValue } }
    var admitted: Bool
    var hasKeys = false
    var pendingSay: [String]

    // Roster as the relay reports it (indices, identities, roles, mute), and names from knocks.
    var relayIdentities: [UInt16: PublicIdentity] = [:]
    var knockNames: [UInt16: String] = [:]
    var mutedSelf = true
    var running = true

    /// Admission order (the relay's host-succession rule follows it).
    var admissionOrder: [UInt16] = []
    var perSenderRecorders: [UInt16: WAVStreamWriter] = [:]
    var toldMuted = false
    /// Host: knocks opened and not yet decided (for KNOCK_NOTICEs to co-hosts).
    var pendingKnocks: [UInt16: (identity: PublicIdentity, name: String)] = [:]
    /// Leader: every knock it opened and verified, by waiting index (4.2).
    var openedKnocks: [UInt16: Knock] = [:]
    /// Leader: indices whose admission its user (or its local policy) decided (3.6 A).
    var approved: [UInt16: [UInt8]] = [:]
    /// Leader: admissions decided and checked, waiting (at most ``ParticipantOptions/admissionBatchMillis``)
    /// to be keyed together.
    var pendingAdmissions: [SignedRoster.Entry] = []
    var admissionFlushScheduled = false
    /// Leader: join nonces of every knock accepted so far; a repeat is a replay (4.2).
    var seenKnockNonces: Set<[UInt8]> = []
    /// Alerts and rejections kept for inspection (the oldest half goes when full); every
    /// one is also emitted as an event.
    static let retainedReports = 1_024
    /// The most knocks a leader accepts in one meeting (bounds ``seenKnockNonces``).
    static let maximumKnocksPerMeeting = 65_536
    /// Leader: relay-admitted knockers whose admission a co-host made at the relay, waiting
    /// (at most ``approvalWaitMillis``) for that co-host's signed request.
    var awaitingApproval: [UInt16: (identity: PublicIdentity, role: Role, since: UInt64)] = [:]
    static let approvalWaitMillis: UInt64 = 5_000
    /// Leader: the highest moderation-request sequence seen from each co-host.
    var requestSequences: [UInt16: UInt32] = [:]
    /// Co-host: the sequence of this client's last moderation request.
    var ownRequestSequence: UInt32 = 0
    /// Leader: the room was created without a waiting room, so a verified knock is admitted
    /// by the leader's own policy (the relay admits such joiners at once).
    var admitsWithoutWaitingRoom = false
    /// The invite secret (4.1): the leader checks knocks' invite proofs with it.
    var inviteSecret: [UInt8] = []
    /// This participant's join nonce (4.2).
    var joinNonce: [UInt8] = []
    /// Member: when the leader's last verified heartbeat (or the first keys) arrived.
    var lastLeaderSignOfLife: UInt64 = 0
    /// Member: the leader fell silent and no successor could take over.
    var leaderSilentReported = false
    /// Member: since when the leader's heartbeats announce an epoch or roster we lack.
    var behindSince: UInt64?
    /// Member: the newest epoch and roster version the leader's verified heartbeats
    /// announced, and the newest epoch seen on its (unauthenticated) frames.
    var announcedEpoch: UInt64 = 0
    var announcedVersion: UInt32 = 0
    var epochSeenOnFrames: UInt64 = 0

    /// Member: whether the leader announced (signed) an epoch or roster we do not hold.
    var behindSigned: Bool {
        guard let m = member else { return false }
        return announcedEpoch > (m.epoch ?? 0) || announcedVersion > (m.roster?.rosterVersion ?? 0)
    }

    /// Member: behind by the signed announcements or by frames seen under a newer epoch.
    var isBehind: Bool { behindSigned || epochSeenOnFrames > (member?.epoch ?? 0) }
    /// Member: the stale-keys alert was raised (and sending stopped) for the current lag.
    var staleReported = false
    /// Alerts raised about what the relay claimed (code, message).
    public private(set) var alerts: [(code: String, message: String)] = []
    /// Co-host: identities the relay reported in KNOCKs, to check the leader's notices against.
    var relayKnocks: [UInt16: PublicIdentity] = [:]

    // Screen sharing.
    var chunker: ScreenChunker
    var reassemblers: [UInt16: ScreenReassembler] = [:]
    /// Completed shares received: (sender, bytes, sha256 hex).
    public private(set) var sharesReceived: [(from: UInt16, bytes: Int, sha256: String)] = []
    /// Screen frames dropped because the verified roster does not mark their sender presenter.
    public private(set) var screenFromNonPresenters = 0

    // Audio.
    public private(set) var mediaPath: MediaPath?
    var lastPing: UInt64 = 0
    var audio: AudioSendPipeline?
    var mixer: ReceiveMixer
    var recorder: WAVStreamWriter?
    var audioStats: [UInt16: AudioReceiveStats] = [:]
    var lastAudioReport: UInt64 = 0

    /// What the key ring counted for frames the relay forwarded to us (opened, buffered, each
    /// drop reason), less the frames of epochs from before our admission, which a late joiner
    /// must not be able to read and which are therefore not failures.
    public var receiveCounters: ReceiveCounters {
        var c = e2e.ring.counters
        c.unknownEpoch -= framesBeforeJoin
        return c
    }
    /// Chat lines received: (sender, text, private).
    public private(set) var chatLog: [(from: UInt16, text: String, isPrivate: Bool)] = []
    /// Every security code shown.
    public private(set) var securityCodes: [String] = []
    /// Key material rejected (a substituted key package, roster or host key).
    public private(set) var rejections: [String] = []

    init(connection: RelayConnection, identity: PrivateIdentity, roomID: RoomID, index: UInt16, admitted: Bool,
         options: ParticipantOptions, output: EventOutput) throws {
        self.connection = connection
        self.identity = identity
        self.roomID = roomID
        self.index = index
        self.admitted = admitted
        self.options = options
        self.output = output
        self.e2e = E2ESession(roomID: roomID, me: index, identity: identity)
        self.pendingSay = options.say
        self.pendingShare = options.sharePath
        self.mixer = try ReceiveMixer(configuration: ReceiveMixerConfiguration())
        self.chunker = try ScreenChunker()
        if let path = options.recordPath {
            self.recorder = try WAVStreamWriter(path: path, sampleRate: 48_000, channels: 1,
                                                maximumDataBytes: WAVStreamWriter.maximumDataBytes(seconds: 3600, sampleRate: 48_000, channels: 1))
        }
        if let spec = options.audioSource {
            self.audio = try AudioSendPipeline(source: try AudioSource(spec: spec, loop: true), configuration: options.audioSendConfiguration)
        }
    }

    /// Milliseconds since this participant started.
    var now: UInt64 {
        let d = ContinuousClock.now - start
        return UInt64(d.components.seconds) * 1000 + UInt64(d.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: - Starting

    /// Creates a room as its host and leader; emits `invite`.
    public static func host(relay: RelayEndpoint, password: String?, settings: RoomSettings,
                            options: ParticipantOptions, output: EventOutput) async throws -> Participant {
        let (connection, challenge) = try await RelayHandshake.open(relay, tls: options.tls)
        // The host proposes the room id, so the identity proof and relay_auth bind to it (4.1, 5.4).
        var proposed = RoomID.zero
        while proposed == .zero { proposed = RoomID(bytes: SecureRandom.bytes(count: MessageLimits.roomIDLength))! }
        let origin = Invite.relayOrigin(secure: relay.usesTLS, host: relay.host, port: relay.port)
        let auth = try password.map { try Invite.relayAuth(password: $0, roomID: proposed, relayOrigin: origin) }
        let secret = Invite.randomSecret()
        try await connection.send(.createRoom(CreateRoomMessage(
            roomID: proposed, identity: options.identity.publicIdentity.wireIdentity,
            signature: try RelayHandshake.proof(identity: options.identity, challenge: challenge, room: proposed),
            relayAuth: auth, settings: settings)))
        let created = try await RelayHandshake.expect(connection, "ROOM_CREATED", timeout: .seconds(10)) {
            if case .roomCreated(let c) = $0 { return c }; return nil
        }
        guard created.roomID == proposed else {
            await connection.close()
            throw SessionError.protocolViolation("the relay created room \(created.roomID.base64URL), not the proposed \(proposed.base64URL)")
        }
        let p = try Participant(connection: connection, identity: options.identity, roomID: created.roomID,
                                index: created.index.rawValue, admitted: true, options: options, output: output)
        try await p.startAsLeader(relay: relay, password: password, secret: secret, waitingRoom: settings.waitingRoom)
        return p
    }

    /// Joins with an invite: knocks (sealed to the host), waits in the waiting room if
    /// there is one; emits `waiting` and later `admitted`.
    public static func join(invite: Invite, options: ParticipantOptions, output: EventOutput) async throws -> Participant {
        let endpoint = RelayEndpoint(scheme: invite.secure ? .wss : .ws, host: invite.host, port: invite.port)
        let (connection, challenge) = try await RelayHandshake.open(endpoint, tls: options.tls)
        let (knock, nonce) = try Knock.seal(roomID: invite.roomID, displayName: options.displayName, joiner: options.identity,
                                            host: invite.hostIdentity.agreementKey, inviteSecret: invite.secret)
        let auth = try invite.password.map { try Invite.relayAuth(password: $0, roomID: invite.roomID, relayOrigin: invite.relayURL) }
        try await connection.send(.join(JoinMessage(
            roomID: invite.roomID, identity: options.identity.publicIdentity.wireIdentity,
            signature: try RelayHandshake.proof(identity: options.identity, challenge: challenge, room: invite.roomID),
            relayAuth: auth, knock: knock)))
        let first = try await RelayHandshake.expect(connection, "WAITING or ADMITTED", timeout: .seconds(10)) { m -> RelayMessage? in
            switch m { case .waiting, .admitted: return m; default: return nil }
        }
        let index: UInt16
        switch first {
        case .waiting(let w): index = w.index.rawValue
        case .admitted(let a): index = a.index.rawValue
        default: throw SessionError.protocolViolation("unexpected answer to JOIN")
        }
        let p = try Participant(connection: connection, identity: options.identity, roomID: invite.roomID, index: index,
                                admitted: false, options: options, output: output)
        await p.setInvite(invite, joinNonce: nonce)
        if case .waiting = first {
            output.emit("waiting", [("participant", .int(Int(index)))], human: "waiting for the host to admit you (you are #\(index))")
        } else if case .admitted(let a) = first {
            await p.handle(.admitted(a))
        }
        return p
    }

    func setInvite(_ invite: Invite, joinNonce: [UInt8]) {
        self.invite = invite
        self.inviteSecret = invite.secret
        self.joinNonce = joinNonce
    }

    private func startAsLeader(relay: RelayEndpoint, password: String?, secret: [UInt8], waitingRoom: Bool) async throws {
        invite = Invite(secure: relay.usesTLS, host: relay.host, port: relay.port, roomID: roomID,
                        hostIdentity: identity.publicIdentity, secret: secret, password: password)
        inviteSecret = secret
        admitsWithoutWaitingRoom = !waitingRoom
        output.emit("invite", [("invite", .string(invite!.text))], human: "invite: \(invite!.text)")
        relayIdentities[index] = identity.publicIdentity
        var l = LeaderKeySchedule(roomID: roomID, me: index, identity: identity, displayName: options.displayName)
        if let interval = options.rotationIntervalMillis { l.rotationInterval = interval }
        l.heartbeatInterval = options.heartbeatIntervalMillis
        var actions = try l.start(now: now)
        // The host may always share (5.5); the signed roster says so (2.6).
        actions += try l.updateRoster([MemberUpdate(index: index, presenter: true)])
        leader = l
        try await perform(actions)
        mutedSelf = false // the room's creator enters unmuted (relay policy)
    }

    // MARK: - Running

    /// Processes relay traffic and sends media until `duration` passes, the meeting ends, or
    /// the connection closes. Then leaves and finishes the recording.
    public func run(for duration: Duration) async {
        deadlineOverride = ContinuousClock.now + duration
        // Every 20 ms while there is audio to send or play out; a load-test participant
        // with neither (a probe and no source) only keeps time: heartbeats, silence,
        // epoch wipes, pings. 100 ms is far inside every one of those timeouts, and 500 such
        // participants wake 5 000 times a second instead of 25 000.
        let tick: Duration = (audio == nil && options.probe != nil) ? .milliseconds(100) : .milliseconds(20)
        let ticker = Task { [weak self] in
            var next = ContinuousClock.now
            while !Task.isCancelled {
                next += tick
                try? await Task.sleep(until: next, clock: .continuous)
                guard let self else { return }
                await self.mediaTick()
            }
        }
        defer { ticker.cancel() }
        while running, ContinuousClock.now < deadlineOverride {
            let item: RelayInbound?
            do {
                item = try await connection.next(timeout: min(deadlineOverride - ContinuousClock.now, .milliseconds(250)))
            } catch {
                continue
            }
            guard let item else { break }
            await handle(item)
        }
        ticker.cancel()
        if running {
            await handOverLeadership()
            try? await connection.send(.command(CommandMessage(requestID: 0xFFFF, action: .leave)))
        }
        reportAudio(force: true)
        await mediaPath?.close()
        try? recorder?.finish()
        for writer in perSenderRecorders.values { try? writer.finish() }
        await connection.close()
    }

    /// Sends a chat line (broadcast, end-to-end encrypted), or a private message.
    public func say(_ text: String, to recipient: UInt16? = nil) async throws {
        guard hasKeys, e2e.sender.sendingEpoch(at: now) != nil else { pendingSay.append(text); return }
        let bytes = Array(text.utf8)
        guard (1...4000).contains(bytes.count) else { return }
        if let recipient {
            guard peerIdentity(recipient) != nil else {
                output.emit("error", [("code", .string("unknown_participant")), ("message", .string("no such participant #\(recipient)"))],
                            human: "no such participant #\(recipient)")
                return
            }
            // The pairwise key of 2.7, with its own counter, kept by the sender state.
            let payload = try e2e.sender.seal(kind: .chat, recipient: ParticipantIndex(recipient), plaintext: bytes, now: now)
            try await sendFrame(.chat, to: ParticipantIndex(recipient), payload: payload)
        } else {
            // Chat is reliable: seal it under the newest epoch. A member whose key package is
            // still on its way buffers the frame (up to 1 s, 3.3) instead of losing it, while
            // a member who joined later cannot read it (the join ratchet).
            let payload = try e2e.sender.seal(kind: .chat, recipient: .everyone, plaintext: bytes, now: now, epoch: .newest)
            try await sendFrame(.chat, to: .everyone, payload: payload)
        }
    }

    /// Sends a command to the relay. As leader, the decisions that the signed roster
    /// carries take effect end to end at once, whatever the relay later reports (3.6):
    /// admission approvals, removals (a fresh epoch without the removed member), roles,
    /// presenter rights, and a transfer of the host role (a signed `HANDOVER` first).
    public func command(_ action: CommandAction) async throws {
        if leader != nil { await leaderDecides(action) } else { await requestFromLeader(action) }
        nextRequest &+= 1
        try await connection.send(.command(CommandMessage(requestID: nextRequest, action: action)))
        // After the command: the relay then sends the new co-host its KNOCKs before it
        // forwards these notices, which the co-host checks against them.
        if leader != nil, case .promoteCohost(let i) = action {
            await sendKnockNotices(for: Array(pendingKnocks.keys).sorted(), to: [i.rawValue])
        }
    }

    /// The leader's own decision, applied to the end-to-end state before the relay hears it.
    func leaderDecides(_ action: CommandAction) async {
        switch action {
        case .admit(let i):
            // The decision is about the knock the user saw: its join nonce, not the index.
            if let knock = openedKnocks[i.rawValue] {
                approved[i.rawValue] = knock.joinNonce
                if let waiting = awaitingApproval.removeValue(forKey: i.rawValue) {
                    await leaderAdmits(i.rawValue, relayIdentity: waiting.identity, relayRole: waiting.role)
                }
            } else {
                alert("not_admitted", "#\(i.rawValue) has no knock the leader opened; nothing to admit end to end")
            }
        case .deny(let i): approved[i.rawValue] = nil
        case .remove(let i):
            approved[i.rawValue] = nil
            await leaderRemoves(i.rawValue, reason: "removed")
        case .promoteCohost(let i):
            await leaderUpdate(MemberUpdate(index: i.rawValue, role: .cohost, presenter: true))
        case .demoteCohost(let i): await leaderUpdate(MemberUpdate(index: i.rawValue, role: .participant, presenter: false))
        case .grantShare(let i): await leaderUpdate(MemberUpdate(index: i.rawValue, presenter: true))
        case .revokeShare(let i): await leaderUpdate(MemberUpdate(index: i.rawValue, presenter: false))
        case .transferHost(let i): await handOverLeadership(to: i.rawValue)
        default: break
        }
    }

    /// Co-host: a moderation decision the signed roster reflects goes to the leader too,
    /// signed end to end (3.6 MODERATION_REQUEST); the relay command alone keys no one.
    func requestFromLeader(_ action: CommandAction) async {
        guard let m = member, m.roster?.entry(for: index)?.role == .cohost else { return }
        let request: (ModerationRequest.Action, UInt16)
        switch action {
        case .admit(let i): request = (.admit, i.rawValue)
        case .remove(let i): request = (.remove, i.rawValue)
        case .grantShare(let i): request = (.grantShare, i.rawValue)
        case .revokeShare(let i): request = (.revokeShare, i.rawValue)
        default: return
        }
        let target: PublicIdentity?
        if request.0 == .admit { target = relayKnocks[request.1] } else { target = m.roster?.entry(for: request.1)?.identity }
        guard let target else { return }
        ownRequestSequence &+= 1
        let signed = ModerationRequest.sign(roomID: roomID, requester: index, sequence: ownRequestSequence, action: request.0,
                                            target: request.1, targetIdentity: target, by: identity.signingKey)
        if let payload = try? e2e.sender.seal(kind: .control, recipient: ParticipantIndex(m.leaderIndex), plaintext: signed.encoded, now: now, epoch: .newest) {
            try? await sendFrame(.control, to: ParticipantIndex(m.leaderIndex), payload: payload)
        }
    }

    /// Leader: a co-host's signed request (3.6). It counts only from a co-host of the signed
    /// roster, signed by that co-host's key, fresh, and naming the identity the leader
    /// knows for the target (the knock's for an admission, the roster's otherwise).
    func leaderHandles(_ r: ModerationRequest, from sender: UInt16) async {
        guard let l = leader else { return }
        guard r.requester == sender, let requester = l.entries.first(where: { $0.index == sender }), requester.role == .cohost,
              r.roomID == roomID, r.isSigned(by: requester.identity.signingKey) else {
            alert("request_rejected", "a moderation request from #\(sender) is not signed by a co-host of the signed roster")
            return
        }
        guard r.sequence > (requestSequences[sender] ?? 0) else {
            alert("request_rejected", "a moderation request from #\(sender) was replayed")
            return
        }
        requestSequences[sender] = r.sequence
        switch r.action {
        case .admit:
            guard let knock = openedKnocks[r.target], knock.identity == r.targetIdentity else {
                alert("request_rejected", "#\(sender) asked to admit #\(r.target), whose knock the leader did not open with that identity")
                return
            }
            approved[r.target] = knock.joinNonce
            if let waiting = awaitingApproval.removeValue(forKey: r.target) {
                await leaderAdmits(r.target, relayIdentity: waiting.identity, relayRole: waiting.role)
            }
        case .remove, .grantShare, .revokeShare:
            guard let entry = l.entries.first(where: { $0.index == r.target }), entry.identity == r.targetIdentity, entry.role != .host else {
                alert("request_rejected", "#\(sender) asked to \(r.action.name) #\(r.target), which the signed roster does not hold with that identity")
                return
            }
            switch r.action {
            case .remove:
                approved[r.target] = nil
                await leaderRemoves(r.target, reason: "removed by #\(sender)")
            case .grantShare: await leaderUpdate(MemberUpdate(index: r.target, presenter: true))
            default: await leaderUpdate(MemberUpdate(index: r.target, presenter: false))
            }
        }
    }

    /// Reports what the relay claimed that the end-to-end state refuses: an `alert` event,
    /// and nothing signed changes.
    func alert(_ code: String, _ message: String) {
        if alerts.count >= Self.retainedReports { alerts.removeFirst(alerts.count / 2) }
        alerts.append((code, message))
        output.emit("alert", [("code", .string(code)), ("message", .string(message))], human: "ALERT (\(code)): \(message)")
    }

    var nextRequest: UInt16 = 0
    var deadlineOverride = ContinuousClock.now

    /// The current security code, if keys are in place.
    public var securityCode: String? {
        leader?.securityCode?.description ?? member?.securityCode?.description
    }

    // MARK: - Inbound

    func handle(_ item: RelayInbound) async {
        switch item {
        case .message(let m):
            options.inboundTap?(m)
            if let drop = options.inboundDrop, drop(m) { return }
            await handle(m)
        case .undecodable(_, let error):
            output.emit("error", [("code", .string("malformed")), ("message", .string(error.description))], human: "relay sent a malformed message: \(error)")
        case .closed:
            if running {
                output.emit("ended", human: "connection closed")
            }
            running = false
        }
    }

    func handle(_ message: RelayMessage) async {
        switch message {
        case .admitted(let a):
            handleAdmitted(a)
            if options.unmuteOnJoin { try? await command(.unmuteSelf) }
        case .knock(let k):
            await handleKnock(k)
        case .event(let e):
            await handleEvent(e)
        case .frame(let f):
            await handleFrame(f)
        case .error(let e):
            let fields: [(String, EventOutput.Value)] = [("code", .string(e.code.name)), ("message", .string(e.message))]
            switch e.code {
            case .ended:
                output.emit("ended", human: "the host ended the meeting")
            case .denied:
                output.emit("denied", human: "the host denied admission")
            default:
                output.emit("error", fields, human: "\(e.code.name): \(e.message)")
            }
            if e.isFatal { running = false }
        case .mediaSession(let session):
            await openMediaPath(session)
        case .commandOK, .pong, .welcome, .roomCreated, .waiting:
            break
        }
    }

    func handleAdmitted(_ a: AdmittedMessage) {
        // Admission happens once per session: a second ADMITTED (only a relay sends one)
        // would reset the member's key schedule and let old key packages in again.
        guard !admitted, leader == nil, member == nil else {
            alert("unexpected_admission", "the relay sent ADMITTED again; ignored")
            return
        }
        index = a.index.rawValue
        admitted = true
        for entry in a.roster {
            relayIdentities[entry.index.rawValue] = try? PublicIdentity(entry.identity)
        }
        let host = a.roster.first { $0.role == .host }
        if let invite, let host, let hostIdentity = try? PublicIdentity(host.identity) {
            if hostIdentity != invite.hostIdentity {
                rejections.append("host key differs from the invite")
                output.emit("error", [("code", .string("key_rejected")), ("message", .string("the room's host is not the one the invite names"))],
                            human: "WARNING: the room's host is not the one the invite names; key packages will be rejected")
            }
            member = MemberKeySchedule(roomID: roomID, me: index, identity: identity, joinNonce: joinNonce,
                                       leaderIndex: host.index.rawValue, leaderIdentity: invite.hostIdentity)
            lastLeaderSignOfLife = now
        }
        mutedSelf = a.roster.first { $0.index == a.index }?.state.contains(.muted) ?? true
        output.emit("admitted", [("participant", .int(Int(index)))], human: "admitted as #\(index)")
    }

    func handleKnock(_ k: KnockMessage) async {
        guard let relayIdentity = try? PublicIdentity(k.identity) else { return }
        let fingerprint = relayIdentity.fingerprint.displayString
        var name = "(sealed to the host; name follows from the host)"
        if leader == nil { relayKnocks[k.index.rawValue] = relayIdentity }
        if leader != nil {
            do {
                let opened = try Knock.open(k.knock, host: identity, expectedRoom: roomID, relayIdentity: relayIdentity, inviteSecret: inviteSecret)
                guard !seenKnockNonces.contains(opened.joinNonce) else {
                    alert("knock_replayed", "the relay replayed a knock from \(fingerprint) as #\(k.index.rawValue)")
                    return
                }
                guard seenKnockNonces.count < Self.maximumKnocksPerMeeting else {
                    alert("too_many_knocks", "this meeting has had \(Self.maximumKnocksPerMeeting) knocks; no more are accepted")
                    return
                }
                // One knock per waiting index: a second one at the same index (which only a
                // relay can present) never replaces the knock a decision was made about.
                guard openedKnocks[k.index.rawValue] == nil else {
                    alert("knock_replaced", "the relay presented a second knock [\(fingerprint)] for #\(k.index.rawValue); the first one stands")
                    return
                }
                seenKnockNonces.insert(opened.joinNonce)
                openedKnocks[k.index.rawValue] = opened
                name = opened.displayName
                knockNames[k.index.rawValue] = opened.displayName
                pendingKnocks[k.index.rawValue] = (relayIdentity, opened.displayName)
                await sendKnockNotices(for: [k.index.rawValue], to: leader?.entries.filter { $0.role == .cohost }.map(\.index) ?? [])
            } catch {
                rejections.append("knock: \(error)")
                alert("knock_rejected", "a knock for #\(k.index.rawValue) [\(fingerprint)] did not verify: \(error)")
                return
            }
        }
        output.emit("knock", [("participant", .int(Int(k.index.rawValue))), ("name", .string(name)), ("fingerprint", .string(fingerprint))],
                    human: "knock: #\(k.index.rawValue) \(name) [\(fingerprint)]  (/admit \(k.index.rawValue) or /deny \(k.index.rawValue))")
        if leader != nil, admitsWithoutWaitingRoom {
            approved[k.index.rawValue] = openedKnocks[k.index.rawValue]?.joinNonce // the relay admits it at once; the leader's policy keys it
        } else if options.autoAdmit, leader != nil {
            try? await command(.admit(k.index))
        }
    }

    func handleEvent(_ e: EventMessage) async {
        switch e.event {
        case .joined(let i, let wireIdentity, let role):
            pendingKnocks[i.rawValue] = nil
            relayKnocks[i.rawValue] = nil
            guard let id = try? PublicIdentity(wireIdentity) else { return }
            relayIdentities[i.rawValue] = id
            output.emit("joined", [("participant", .int(Int(i.rawValue))), ("fingerprint", .string(id.fingerprint.displayString))],
                        human: "#\(i.rawValue) joined [\(id.fingerprint.displayString)]")
            if leader != nil { await leaderAdmits(i.rawValue, relayIdentity: id, relayRole: role, actor: e.actor.rawValue) }
        case .left(let i, let reason):
            await memberGone(i.rawValue, reason: reason.name)
        case .removed(let i):
            await memberGone(i.rawValue, reason: "removed")
        case .muted(let i):
            if i.rawValue == index { mutedSelf = true }
            await leaderUpdate(MemberUpdate(index: i.rawValue, muted: true))
            output.emit("muted", [("participant", .int(Int(i.rawValue)))], human: "#\(i.rawValue) is muted")
        case .unmuted(let i):
            if i.rawValue == index { mutedSelf = false }
            await leaderUpdate(MemberUpdate(index: i.rawValue, muted: false))
            output.emit("unmuted", [("participant", .int(Int(i.rawValue)))], human: "#\(i.rawValue) is unmuted")
        case .locked:
            output.emit("locked", human: "the room is locked")
        case .unlocked:
            output.emit("unlocked", human: "the room is unlocked")
        case .recording(let on):
            output.emit("recording", [("on", .bool(on))], human: on ? "the host started recording" : "recording stopped")
        case .roleChanged(let i, let role):
            // The relay's roles steer its own rules; the signed roster changes only by the
            // leader's decisions (3.6). A disagreement is shown, never signed.
            if let l = leader, let entry = l.entries.first(where: { $0.index == i.rawValue }), entry.role != role,
               !(i.rawValue == index && role == .host) {
                alert("relay_role_mismatch", "the relay says #\(i.rawValue) is \(role.name); the signed roster says \(entry.role.name)")
            } else if leader == nil, role == .host, var m = member {
                let actions = m.relayReportedHost(i.rawValue)
                member = m
                try? await perform(actions)
            } else if leader == nil, i.rawValue == index, role == .host {
                alert("relay_role_mismatch", "the relay says this participant is host, without an end-to-end handover")
            }
            output.emit("role", [("participant", .int(Int(i.rawValue))), ("role", .string(role.name))], human: "#\(i.rawValue) is now \(role.name) (relay)")
        case .presenterChanged(let i, let granted):
            if let l = leader, let entry = l.entries.first(where: { $0.index == i.rawValue }), entry.presenter != granted {
                alert("relay_role_mismatch", "the relay says #\(i.rawValue) \(granted ? "may" : "may not") share; the signed roster disagrees")
            }
            output.emit("presenter", [("participant", .int(Int(i.rawValue))), ("granted", .bool(granted))],
                        human: "#\(i.rawValue) \(granted ? "may" : "may no longer") share the screen (relay)")
        case .waitingLeft(let i), .waitingDecided(let i, false):
            pendingKnocks[i.rawValue] = nil
            relayKnocks[i.rawValue] = nil
            openedKnocks[i.rawValue] = nil
            approved[i.rawValue] = nil
            awaitingApproval[i.rawValue] = nil
        case .waitingDecided(let i, true):
            pendingKnocks[i.rawValue] = nil
            relayKnocks[i.rawValue] = nil
        case .unmuteRequested:
            output.emit("unmute_requested", human: "the host asks you to unmute (/unmute)")
        default:
            break
        }
    }

    /// Host: tells co-hosts, end to end and signed, who is knocking (3.6 KNOCK_NOTICE).
    func sendKnockNotices(for indices: [UInt16], to cohosts: [UInt16]) async {
        guard leader != nil, !cohosts.isEmpty else { return }
        for i in indices {
            guard let knock = pendingKnocks[i],
                  let notice = try? KnockNotice.sign(roomID: roomID, waitingIndex: i, identity: knock.identity, displayName: knock.name,
                                                     leader: identity.signingKey) else { continue }
            for cohost in cohosts {
                if let payload = try? e2e.sender.seal(kind: .control, recipient: ParticipantIndex(cohost), plaintext: notice.encoded, now: now, epoch: .newest) {
                    try? await sendFrame(.control, to: ParticipantIndex(cohost), payload: payload)
                }
            }
        }
    }

    /// Admission authority (3.6): the leader keys `i` only if it opened and verified a fresh
    /// knock from exactly the identity the relay reports, and its user or its own policy
    /// decided to admit it. Anything else is an alert, with no roster entry and no key.
    func leaderAdmits(_ i: UInt16, relayIdentity id: PublicIdentity, relayRole: Role, actor: UInt16 = 0) async {
        guard let l = leader else { return }
        guard l.entries.first(where: { $0.index == i }) == nil, !pendingAdmissions.contains(where: { $0.index == i }) else {
            alert("unauthorized_join", "the relay announced #\(i) again")
            return
        }
        guard let knock = openedKnocks[i] else {
            alert("unauthorized_join", "the relay announced #\(i) [\(id.fingerprint.displayString)] joined without a knock the leader opened")
            return
        }
        guard knock.identity == id else {
            alert("identity_mismatch", "the relay announced #\(i) with identity [\(id.fingerprint.displayString)], but its knock was from [\(knock.identity.fingerprint.displayString)]")
            return
        }
        guard let decided = approved[i], decided == knock.joinNonce else {
            // A co-host's admission reaches the relay and, signed end to end, the leader:
            // wait a little for the signed request; without it, no key.
            if let a = l.entries.first(where: { $0.index == actor }), a.role == .cohost {
                awaitingApproval[i] = (id, relayRole, now)
            } else {
                alert("not_admitted", "the relay admitted #\(i) [\(id.fingerprint.displayString)], which the leader did not admit")
            }
            return
        }
        guard !l.entries.contains(where: { $0.identity == id }), !pendingAdmissions.contains(where: { $0.identity == id }) else {
            alert("unauthorized_join", "the identity of #\(i) is already a member")
            return
        }
        openedKnocks[i] = nil
        approved[i] = nil
        if relayRole != .participant {
            alert("relay_role_mismatch", "the relay admitted #\(i) as \(relayRole.name); it joins the signed roster as participant")
        }
        let entry = SignedRoster.Entry(index: i, identity: id, role: .participant, muted: true, presenter: false,
                                       displayName: knock.displayName, joinNonce: knock.joinNonce)
        // Keyed with the admissions decided in the next few milliseconds: joins that arrive
        // together share one epoch change and one ROSTER (a large room's ramp).
        pendingAdmissions.append(entry)
        guard !admissionFlushScheduled else { return }
        admissionFlushScheduled = true
        // A large room waits longer (half a millisecond per member, up to 250 ms): each
        // change sends every member a ROSTER that grows with the room.
        let wait = min(max(options.admissionBatchMillis, UInt64(l.entries.count / 2)), 250)
        Task {
            try? await Task.sleep(for: .milliseconds(wait))
            await self.keyAdmissions()
        }
    }

    /// Leader: keys the admissions decided since the last change, in one epoch change;
    /// with `removing`, the same change removes that member (a fresh secret).
    func keyAdmissions(removing: UInt16? = nil) async {
        admissionFlushScheduled = false
        var batch = pendingAdmissions.filter { $0.index != removing }
        pendingAdmissions = []
        guard var l = leader, !batch.isEmpty || removing != nil else { return }
        let room = SignedRoster.maximumMembers - l.entries.count + (removing == nil ? 0 : 1)
        if batch.count > room {
            for e in batch.dropFirst(max(0, room)) {
                alert("room_full", "#\(e.index) cannot join the signed roster: it lists at most \(SignedRoster.maximumMembers) members")
            }
            batch = Array(batch.prefix(max(0, room)))
        }
        do {
            let actions = try l.changeMembership(admit: batch, remove: removing.map { [$0] } ?? [], now: now)
            admissionOrder += batch.map(\.index)
            leader = l
            try await perform(actions)
        } catch {
            output.emit("error", [("code", .string("internal")), ("message", .string("rekey failed: \(error)"))], human: "rekey failed: \(error)")
        }
    }

    /// Hands the keys over as leader: a signed HANDOVER naming `successor` (or, leaving,
    /// the member the signed roster names as successor), then this client follows it as a
    /// member (3.6).
    func handOverLeadership(to chosen: UInt16? = nil) async {
        guard var l = leader else { return }
        let successor = chosen ?? (l.successor != 0 ? l.successor : nil)
        guard let successor, successor != index, l.entries.contains(where: { $0.index == successor }) else {
            if let chosen { alert("not_a_member", "#\(chosen) is not in the signed roster; the keys stay here") }
            return
        }
        if !pendingAdmissions.isEmpty {
            // Admissions already decided are keyed before the keys go.
            await keyAdmissions()
            guard let current = leader else { return }
            l = current
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
            lastLeaderSignOfLife = now
            try await perform(actions)
            output.emit("leader", [("participant", .int(Int(successor))), ("handover", .bool(true))], human: "handed the keys over to #\(successor)")
        } catch {
            leader = l
            output.emit("error", [("code", .string("internal")), ("message", .string("handover failed: \(error)"))], human: "handover failed: \(error)")
        }
    }

    /// This member takes the keys over: after a verified HANDOVER naming it, or after the
    /// leader fell silent while the signed roster names it successor (3.6).
    func takeOverLeadership(handover: Bool) async {
        guard let m = member else { return }
        let present = Set(m.members.map(\.index))
        let gone = present.filter { $0 != index && relayIdentities[$0] == nil }.sorted()
        do {
            var (l, actions) = try LeaderKeySchedule.takeOver(from: m, displayName: options.displayName, removing: gone + (handover ? [] : [m.leaderIndex]), now: now)
            l.heartbeatInterval = options.heartbeatIntervalMillis
            if let interval = options.rotationIntervalMillis { l.rotationInterval = interval }
            leader = l
            member = nil
            admissionOrder = l.admissionOrder
            leaderSilentReported = false
            staleReported = false
            behindSince = nil
            output.emit("leader", [("participant", .int(Int(index))), ("handover", .bool(handover))], human: "you now hold the room's keys")
            try await perform(actions)
        } catch {
            output.emit("error", [("code", .string("internal")), ("message", .string("taking over the keys failed: \(error)"))], human: "taking over the keys failed: \(error)")
        }
    }

    /// Leader: removes `i` from the signed roster with a fresh epoch at once.
    func leaderRemoves(_ i: UInt16, reason: String) async {
        pendingAdmissions.removeAll { $0.index == i }
        guard let l = leader, l.entries.contains(where: { $0.index == i }) else { return }
        // Admissions waiting for their batch go in the same change.
        await keyAdmissions(removing: i)
    }

    /// The leader mirrors role and presenter changes into the signed roster.
    func leaderUpdate(_ update: MemberUpdate) async {
        guard var l = leader, l.entries.contains(where: { $0.index == update.index }) else { return }
        do {
            let actions = try l.updateRoster([update])
            leader = l
            try await perform(actions)
        } catch {
            output.emit("error", [("code", .string("internal")), ("message", .string("roster update failed: \(error)"))], human: "roster update failed: \(error)")
        }
    }

    func memberGone(_ i: UInt16, reason: String) async {
        relayIdentities[i] = nil
        openedKnocks[i] = nil
        approved[i] = nil
        awaitingApproval[i] = nil
        output.emit("left", [("participant", .int(Int(i))), ("reason", .string(reason))], human: "#\(i) left (\(reason))")
        // A departure the relay reports can only shrink who holds keys: rekey at once.
        await leaderRemoves(i, reason: reason)
    }

    func handleFrame(_ f: FrameMessage) async {
        let header = f.header
        if header.kind == .keys {
            try? await handle(e2e.receiveKeys(f.payload, from: header.sender.rawValue, now: now))
            return
        }
        if header.kind == .audio, let probe = options.probe, !probe.audioArrived(from: header.sender.rawValue) {
            return
        }
        let (result, outputs) = e2e.receive(header: header, payload: f.payload, now: now)
        // The leader sends under an epoch we do not hold: it is alive, and we are behind
        // (a withheld key package). That is not a silent leader (3.6).
        switch result {
        case .buffered, .dropped(.noKey), .dropped(.unknownEpoch):
            // Unauthenticated: it may mark us behind, never prove the leader alive.
            if leader == nil, let m = member, header.sender.rawValue == m.leaderIndex,
               let e = Self.epoch(of: f.payload), e > (m.epoch ?? 0) {
                epochSeenOnFrames = max(epochSeenOnFrames, e)
                if behindSince == nil { behindSince = now }
            }
        default: break
        }
        switch result {
        case .opened(let frame):
            if frame.header.kind == .control { try? await handle(outputs) } else { await deliver(frame) }
        case .buffered:
            break
        case .dropped(let reason):
            if header.kind == .audio { options.probe?.audioDropped(from: header.sender.rawValue, reason: reason) }
            // A frame under an epoch from before we were admitted is not a failure: a late
            // joiner must not be able to read it (the join ratchet). Count it apart.
            if reason == .unknownEpoch, let epoch = Self.epoch(of: f.payload), epoch < (firstEpoch ?? .max) {
                framesBeforeJoin += 1
                return
            }
            if header.kind == .audio, reason == .decryptFailed || reason == .noKey || reason == .unknownEpoch {
                audioStats[header.sender.rawValue, default: AudioReceiveStats()].decryptFailed += 1
            }
        }
    }

    /// Frames under epochs older than the first we held (sent before our admission).
    public private(set) var framesBeforeJoin = 0
    var firstEpoch: UInt64?

    static func epoch(of sframe: [UInt8]) -> UInt64? {
        guard let (header, _) = try? SFrameHeader.decode(sframe) else { return nil }
        return EpochKeys.split(keyID: header.keyID).epoch
    }

    func deliver(_ frame: ReceivedFrame) async {
        switch frame.header.kind {
        case .audio:
            audioStats[frame.sender, default: AudioReceiveStats()].frames += 1
            if let probe = options.probe {
                if let header = try? AudioPacket.decode(frame.plaintext).header {
                    probe.audioDecrypted(from: frame.sender, sendTimeMicros: header.sendTimeMicros)
                }
                return
            }
            _ = try? mixer.receive(sender: frame.sender, packetBytes: frame.plaintext, nowMicros: Self.monotonicMicros())
        case .chat:
            guard let text = String(validating: frame.plaintext, as: UTF8.self), !text.isEmpty else { return }
            let isPrivate = frame.header.recipient != .everyone
            chatLog.append((frame.sender, text, isPrivate))
            output.emit("chat", [("from", .int(Int(frame.sender))), ("name", .string(name(of: frame.sender))), ("text", .string(text)), ("private", .bool(isPrivate))],
                        human: "\(name(of: frame.sender)) (#\(frame.sender)\(isPrivate ? ", private" : "")): \(text)")
        case .control:
            if leader != nil {
                switch Result(catching: { () throws(E2EControlError) in try E2EControlMessage.decode(frame.plaintext) }) {
                case .success(.moderationRequest(let r)):
                    await leaderHandles(r, from: frame.sender)
                case .failure(.unknownType):
                    break // reserved types are dropped silently (3.6)
                case .failure(let error):
                    alert("request_rejected", "a control message from #\(frame.sender) did not parse: \(error)")
                case .success:
                    // Another leader's ROSTER, HANDOVER or HEARTBEAT: someone else claims the keys.
                    alert("history_differs", "#\(frame.sender) sent leader messages while this client holds the keys; compare security codes")
                }
                return
            }
            // A member's control frames go to its key schedule inside ``E2ESession``.
        case .screen:
            receiveScreen(frame)
        case .keys:
            break
        }
    }

    /// Screen chunks from a presenter of the verified roster are reassembled; anyone
    /// else's are dropped even if the relay forwarded them (2.6).
    func receiveScreen(_ frame: ReceivedFrame) {
        let presenter = leader.map { $0.entries.first { $0.index == frame.sender }?.presenter ?? false }
            ?? member?.isPresenter(frame.sender) ?? false
        guard presenter else { screenFromNonPresenters += 1; return }
        if reassemblers[frame.sender] == nil { reassemblers[frame.sender] = try? ScreenReassembler() }
        guard var r = reassemblers[frame.sender] else { return }
        let outcome = try? r.receive(frame.plaintext)
        reassemblers[frame.sender] = r
        guard case .completed(let object)? = outcome else { return }
        let digest = Hex.encode(SHA2.sha256(object.bytes))
        sharesReceived.append((frame.sender, object.byteCount, digest))
        if let dir = options.saveSharesDirectory {
            let path = "\(dir)/share-\(frame.sender)-\(object.shareID).bin"
            if !FileManagerLite.write(object.bytes, to: path) {
                output.emit("error", [("code", .string("internal")), ("message", .string("cannot save \(path)"))], human: "cannot save \(path)")
            }
        }
        output.emit("share", [("from", .int(Int(frame.sender))), ("bytes", .int(object.byteCount)), ("sha256", .string(digest))],
                    human: "\(name(of: frame.sender)) shared \(object.byteCount) bytes, sha256 \(digest)")
    }

    /// Sends a file as screen frames (needs presenter rights at the relay and in the roster).
    public func share(path: String) async throws {
        guard hasKeys else { throw SessionError.refused(.notAllowed, "no keys yet; share after admission") }
        let bytes = try Self.readShareFile(path)
        let chunks = try chunker.chunks(for: bytes)
        for (i, chunk) in chunks.enumerated() {
            let payload = try e2e.sender.seal(kind: .screen, recipient: .everyone, plaintext: chunk, now: now, epoch: .newest)
            try await sendFrame(.screen, to: .everyone, payload: payload)
            if i % 32 == 31 { try await Task.sleep(for: .milliseconds(50)) } // stay inside the relay's frame rate
        }
        let digest = Hex.encode(SHA2.sha256(bytes))
        output.emit("share_sent", [("bytes", .int(bytes.count)), ("sha256", .string(digest)), ("frames", .int(chunks.count))],
                    human: "shared \(path): \(bytes.count) bytes in \(chunks.count) frames, sha256 \(digest)")
    }

    /// Reads a file to share; at most 64 MiB, checked before reading it whole.
    static func readShareFile(_ path: String) throws -> [UInt8] {
        let limit = 64 * 1024 * 1024
        guard let attributes = try? FileManagerLite.size(of: path) else { throw SessionError.refused(.notAllowed, "cannot read \(path)") }
        guard attributes > 0, attributes <= limit else { throw SessionError.refused(.notAllowed, "\(path) must be 1 byte to 64 MiB") }
        guard let bytes = FileManagerLite.read(path, limit: limit) else { throw SessionError.refused(.notAllowed, "cannot read \(path)") }
        return bytes
    }

    func reject(_ what: String) {
        if rejections.count >= Self.retainedReports { rejections.removeFirst(rejections.count / 2) }
        rejections.append(what)
        output.emit("error", [("code", .string("key_rejected")), ("message", .string(what))], human: "REJECTED \(what)")
    }

    func name(of index: UInt16) -> String {
        if let n = member?.displayName(of: index), !n.isEmpty { return n }
        if let n = leader?.entries.first(where: { $0.index == index })?.displayName, !n.isEmpty { return n }
        return "#\(index)"
    }

    /// A peer's identity from the verified roster (never the relay's roster alone, 2.7).
    func peerIdentity(_ i: UInt16) -> PublicIdentity? {
        if let l = leader { return l.entries.first { $0.index == i }?.identity }
        return member?.members.first { $0.index == i }?.identity
    }

    // MARK: - Key schedule actions

    /// Seals and sends a control message (in parts when long), after the frames queued before it.
    func sendControl(_ plaintext: [UInt8], to recipient: ParticipantIndex) async throws {
        try await sendInOrder(try e2e.sealControlFrames(plaintext, to: recipient, now: now))
    }

    /// Carries out a leader transition. Everything that depends on key state — sealing each
    /// message, installing the epoch — happens here without suspending, so a transition
    /// that starts while this one's frames are still going out (the actor is re-entrant at
    /// every `await`) sees this one complete and never installs or seals out of order.
    func perform(_ actions: [LeaderAction]) async throws {
        try await handle(try e2e.perform(actions, now: now))
    }

    /// Carries out what ``E2ESession`` returned, in order: installs and key-schedule events
    /// are reported as they come, the frames to send go out together (in one write, after
    /// anything queued before them), and the frames that opened are delivered last.
    func handle(_ outputs: [E2ESession.Output]) async throws {
        var frames: [OutgoingFrame] = []
        var opened: [ReceivedFrame] = []
        for output in outputs {
            switch output {
            case .send(let frame): frames.append(frame)
            case .installed(let install): installed(install)
            case .opened(let frame): opened.append(frame)
            case .member(let action): await memberAction(action)
            case .rejected(let reason):
                reject("\(reason)")
                switch reason {
                case .deltaBaseMismatch, .missedEpoch:
                    alert("history_differs", "a roster or rekey was withheld from this client (\(reason)); compare security codes")
                default: break
                }
            }
        }
        try await sendInOrder(frames)
        for frame in opened { await deliver(frame) }
    }

    /// A frame sealed by a key-schedule transition, waiting to be sent.
    typealias OutgoingFrame = E2ESession.OutgoingFrame

    /// Frames of transitions, sent strictly in the order they were sealed by one drainer.
    /// Bounded: at most ``outgoingLimit`` frames (a few rekeys of a 500-member room).
    var outgoing: [OutgoingFrame] = []
    var outgoingDraining = false
    /// Frames handed to ``sendInOrder(_:)`` and frames sent (or dropped) since the start.
    var outgoingQueued: UInt64 = 0
    var outgoingDone: UInt64 = 0
    var outgoingWaiters: [(until: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    static let outgoingLimit = 8_192

    /// Sends `frames` after every frame queued before them; returns once they are sent.
    /// A send that fails (the connection closed) drops what is queued.
    func sendInOrder(_ frames: [OutgoingFrame]) async throws {
        guard !frames.isEmpty else { return }
        guard outgoing.count + frames.count <= Self.outgoingLimit else {
            throw SessionError.refused(.internal, "more than \(Self.outgoingLimit) key-schedule frames waiting to be sent")
        }
        outgoing += frames
        outgoingQueued += UInt64(frames.count)
        let mine = outgoingQueued
        if outgoingDraining {
            await withCheckedContinuation { outgoingWaiters.append((mine, $0)) }
            return
        }
        outgoingDraining = true
        defer {
            outgoingDraining = false
            outgoingDone = outgoingQueued
            outgoing = []
            for w in outgoingWaiters { w.continuation.resume() }
            outgoingWaiters = []
        }
        while !outgoing.isEmpty {
            // Everything queued so far goes out in one write (control and key frames always
            // travel on the WebSocket).
            let batch = outgoing
            outgoing = []
            let messages = try batch.map { f -> ClientMessage in
                let frame = try FrameMessage(kind: f.kind, sender: ParticipantIndex(index), recipient: f.recipient, payload: f.payload)
                options.outboundTap?(frame)
                return .frame(frame)
            }
            try await connection.send(messages)
            outgoingDone += UInt64(batch.count)
            if outgoingWaiters.contains(where: { $0.until <= outgoingDone }) {
                for w in outgoingWaiters where w.until <= outgoingDone { w.continuation.resume() }
                outgoingWaiters.removeAll { $0.until <= outgoingDone }
            }
        }
    }

    /// What the member schedule returned to a direct call (not through ``E2ESession``'s
    /// receive paths): applied by the session, then reported.
    func perform(_ actions: [MemberAction]) async throws {
        try await handle(e2e.apply(actions, now: now))
    }

    /// Reports one key-schedule event (installs and removals are already applied).
    func memberAction(_ action: MemberAction) async {
        do {
            switch action {
            case .install, .membersRemoved:
                break
            case .rosterChanged:
                break
            case .leaderChanged(let i, let key, let handover):
                lastLeaderSignOfLife = now
                leaderSilentReported = false
                staleReported = false
                behindSince = nil
                announcedEpoch = 0
                announcedVersion = 0
                epochSeenOnFrames = 0
                if !handover {
                    _ = key
                    alert("leader_lost", "the leader fell silent; #\(i), the signed roster's successor, took the keys over; compare the new security code")
                }
                if i == index {
                    await takeOverLeadership(handover: handover)
                } else {
                    output.emit("leader", [("participant", .int(Int(i))), ("handover", .bool(handover))], human: "#\(i) now holds the keys")
                }
            case .relayHostDisagrees(let relayHost, let leader):
                alert("relay_role_mismatch", "the relay says #\(relayHost) hosts; the keys are held by #\(leader)")
            case .heartbeat(let epoch, let version):
                lastLeaderSignOfLife = now
                leaderSilentReported = false
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
            case .historyDiffers(let version):
                alert("history_differs", "the leader's roster history differs from ours at roster version \(version): a roster was withheld or the room is split; compare security codes")
            case .heldMessageRejected(let reason):
                reject("\(reason)")
            case .knockNotice(let i, let id, let name):
                guard relayKnocks[i] == id else {
                    reject("knock notice for #\(i) names an identity the relay did not report")
                    return
                }
                output.emit("knock", [("participant", .int(Int(i))), ("name", .string(name)), ("fingerprint", .string(id.fingerprint.displayString))],
                            human: "knock (named by the host): #\(i) \(name) [\(id.fingerprint.displayString)]  (/admit \(i) or /deny \(i))")
            }
        }
    }

    /// An epoch ``E2ESession`` installed: the events and counters around it.
    func installed(_ install: EpochInstall) {
        if firstEpoch == nil { firstEpoch = install.epoch }
        if install.mode != .provisional {
            options.probe?.epochInstalled(install.epoch)
            hasKeys = true
            let code = securityCode ?? ""
            securityCodes.append(code)
            output.emit("epoch", [("epoch", .int(Int(install.epoch))), ("security_code", .string(code))],
                        human: "keys for epoch \(install.epoch); security code \(code)")
        }
    }

    var pendingShare: String?

    /// `--say` lines go out once a sending epoch is active and someone else can read them.
    func flushPendingSay(now nowMs: UInt64) async {
        if let path = pendingShare, hasKeys, e2e.sender.sendingEpoch(at: nowMs) != nil,
           (leader.map { $0.entries.count > 1 } ?? ((member?.members.count ?? 0) > 1)) {
            pendingShare = nil
            do { try await share(path: path) } catch {
                output.emit("error", [("code", .string("not_allowed")), ("message", .string("\(error)"))], human: "share failed: \(error)")
            }
        }
        guard hasKeys, !pendingSay.isEmpty, e2e.sender.sendingEpoch(at: nowMs) != nil else { return }
        let others = leader.map { $0.entries.count > 1 } ?? ((member?.members.count ?? 0) > 1)
        guard others else { return }
        let lines = pendingSay
        pendingSay = []
        for line in lines {
            do { try await say(line) } catch {
                output.emit("error", [("code", .string("internal")), ("message", .string("chat not sent: \(error)"))], human: "chat not sent: \(error)")
            }
        }
    }

    // MARK: - Media

    func mediaTick() async {
        guard running else { return }
        let nowMs = now
        await flushPendingSay(now: nowMs)
        // With audio on UDP the WebSocket can be quiet for long; a PING keeps the relay's
        // idle timeout from closing it.
        if nowMs >= lastPing + 15_000 {
            lastPing = nowMs
            try? await connection.send(.ping(nonce: nowMs))
        }
        // Periodic rotation (3.2): the leader draws a fresh secret when the interval is due.
        if var l = leader, let actions = try? l.rotateIfDue(now: nowMs), !actions.isEmpty {
            leader = l
            try? await perform(actions)
        }
        // The leader's signed heartbeat; members watch for its silence (3.6).
        if var l = leader, let actions = try? l.heartbeatIfDue(now: nowMs), !actions.isEmpty {
            leader = l
            try? await perform(actions)
        }
        await watchLeader(now: nowMs)
        for (i, waiting) in awaitingApproval where nowMs > waiting.since &+ Self.approvalWaitMillis {
            awaitingApproval[i] = nil
            alert("not_admitted", "the relay admitted #\(i) [\(waiting.identity.fingerprint.displayString)], and no signed request from a co-host followed")
        }
        // Old epochs are wiped when their grace ends, even in a quiet room (3.3).
        e2e.ring.advance(to: nowMs)
        if audio != nil, mutedSelf, admitted, !toldMuted {
            toldMuted = true
            output.emit("muted", [("participant", .int(Int(index)))], human: "you are muted: not sending audio (/unmute)")
        }
        if !mutedSelf { toldMuted = false }
        if let audio, admitted, hasKeys, !mutedSelf, !leaderSilentReported, !staleReported, options.probe?.mayTalk ?? true, e2e.sender.sendingEpoch(at: nowMs) != nil {
            if let packet = try? audio.nextPacket(nowMicros: Self.monotonicMicros()),
               let payload = try? e2e.sender.seal(kind: .audio, recipient: .everyone, plaintext: packet, now: nowMs) {
                try? await sendFrame(.audio, to: .everyone, payload: payload)
                options.probe?.audioSent()
            }
        }
        guard options.probe == nil else { return }
        let mixed = mixer.tick()
        try? recorder?.append(mixed)
        if let dir = options.recordDirectory {
            mixer.forEachSenderFrame { sender, frame, _ in
                if perSenderRecorders[sender] == nil {
                    perSenderRecorders[sender] = try? WAVStreamWriter(path: "\(dir)/participant-\(sender).wav", sampleRate: 48_000, channels: 1,
                                                                      maximumDataBytes: WAVStreamWriter.maximumDataBytes(seconds: 3600, sampleRate: 48_000, channels: 1))
                }
                try? perSenderRecorders[sender]?.append(frame)
            }
        }
        reportAudio(force: false)
    }

    /// Member: if the leader's heartbeat has been silent past the timeout, leadership moves
    /// to the signed roster's successor (this client, or another member); without one the
    /// member raises an alert once and stops sending until the leader is heard again.
    func watchLeader(now nowMs: UInt64) async {
        // Caught up since (a key package or roster arrived): no longer behind.
        if behindSince != nil, !isBehind {
            behindSince = nil
            staleReported = false
        }
        if leader == nil, let since = behindSince, !staleReported, nowMs > since &+ options.leaderSilenceTimeoutMillis {
            staleReported = true
            alert("stale_keys", "the leader announced keys or a roster that did not reach us in \(options.leaderSilenceTimeoutMillis) ms; not sending under the old epoch")
        }
        // A member that is behind may be cut off from a live leader (its heartbeats are
        // sealed under an epoch it lacks): it waits one more timeout before it treats the
        // leader as lost, and frames the relay could forge cannot stretch that further.
        let silence = behindSince == nil ? options.leaderSilenceTimeoutMillis : 2 &* options.leaderSilenceTimeoutMillis
        guard leader == nil, admitted, let m = member, nowMs > lastLeaderSignOfLife &+ silence else { return }
        guard m.epoch != nil, !m.awaitingRoster else {
            if !leaderSilentReported {
                leaderSilentReported = true
                alert("key_withheld", "no keys from the leader \(options.leaderSilenceTimeoutMillis) ms after admission")
            }
            return
        }
        if m.successor == index {
            // A successor that lacks the newest epoch or roster would fork the epochs.
            guard !behindSigned, m.roster?.epoch == m.epoch else {
                if !leaderSilentReported {
                    leaderSilentReported = true
                    alert("leader_silent", "the leader fell silent, and this successor lacks its newest keys; not taking over")
                }
                return
            }
            alert("leader_lost", "the leader fell silent for \(options.leaderSilenceTimeoutMillis) ms; this client is the signed roster's successor and takes the keys over")
            await takeOverLeadership(handover: false)
            lastLeaderSignOfLife = nowMs
            return
        }
        var next = m
        let actions = next.leaderLost()
        if actions.isEmpty {
            if !leaderSilentReported {
                leaderSilentReported = true
                alert("leader_silent", "the leader fell silent for \(options.leaderSilenceTimeoutMillis) ms and the signed roster names no successor; not sending")
            }
            return
        }
        member = next
        try? await perform(actions)
    }

    func reportAudio(force: Bool) {
        let nowMs = now
        guard force || nowMs >= lastAudioReport + 1000 else { return }
        lastAudioReport = nowMs
        for (s, var stats) in audioStats.sorted(by: { $0.key < $1.key }) {
            if let js = mixer.statistics(for: s) {
                stats.lost = js.jitterBuffer.lost
                stats.late = js.jitterBuffer.late
            }
            output.emit("audio", [("from", .int(Int(s))), ("frames", .int(stats.frames)), ("lost", .int(stats.lost)),
                                  ("late", .int(stats.late)), ("decrypt_failed", .int(stats.decryptFailed))],
                        human: "audio from #\(s): \(stats.frames) frames, \(stats.lost) lost, \(stats.late) late, \(stats.decryptFailed) failed to decrypt")
        }
    }

    func sendFrame(_ kind: FrameKind, to recipient: ParticipantIndex, payload: [UInt8]) async throws {
        let frame = try FrameMessage(kind: kind, sender: ParticipantIndex(index), recipient: recipient, payload: payload)
        options.outboundTap?(frame)
        // Audio by UDP while the path is up; everything else (and audio without a path) on
        // the WebSocket, which is reliable and ordered.
        if kind == .audio, let mediaPath, mediaPath.send(frame: ClientMessage.frame(frame).encoded()) {
            return
        }
        try await connection.send(.frame(frame))
    }

    func openMediaPath(_ session: MediaSessionMessage) async {
        guard options.mediaTransport == .udp, mediaPath == nil else { return }
        do {
            mediaPath = try await MediaPath.open(session, connection: connection, options: options.mediaPathOptions)
            output.emit("media_path", [("transport", .string("udp")), ("port", .int(Int(session.port)))],
                        human: "media path: UDP to port \(session.port) (WebSocket while it does not answer)")
        } catch {
            output.emit("media_path", [("transport", .string("ws")), ("message", .string("\(error)"))],
                        human: "media path: UDP unavailable (\(error)); audio stays on the WebSocket")
        }
    }

    /// The UDP media path's counters (nil without one).
    public func mediaPathStatistics() async -> MediaPath.Statistics? {
        await mediaPath?.statistics()
    }

    /// Audio frames decrypted from `sender` so far.
    public func audioFrames(from sender: UInt16) -> Int { audioStats[sender]?.frames ?? 0 }

    /// Whether audio currently goes by UDP.
    public var mediaPathIsUp: Bool { mediaPath?.isUp ?? false }
}

// MARK: - Console

extension Participant {
    /// Carries out one line typed on standard input.
    public func perform(_ command: ConsoleCommand) async {
        do {
            switch command {
            case .chat(let text):
                try await say(text)
            case .privateMessage(let to, let text):
                try await say(text, to: to)
            case .relay(let action):
                try await self.command(action)
                if action == .leave { running = false }
            case .who:
                let entries: [(UInt16, String, String)]
                if let l = leader {
                    entries = l.entries.map { ($0.index, $0.displayName, $0.role.name) }
                } else {
                    entries = (member?.members ?? []).map { ($0.index, name(of: $0.index), "") }
                }
                for (i, n, role) in entries {
                    output.emit("member", [("participant", .int(Int(i))), ("name", .string(n)), ("role", .string(role))],
                                human: "#\(i) \(n.isEmpty ? "(no name)" : n) \(role)\(i == index ? " (you)" : "")")
                }
            case .code:
                let code = securityCode ?? "(no keys yet)"
                output.emit("code", [("security_code", .string(code))], human: "security code: \(code)")
            case .help:
                output.emit("help", human: ConsoleCommand.helpText)
            case .share(let path):
                try await share(path: path)
            }
        } catch {
            output.emit("error", [("code", .string("internal")), ("message", .string("\(error)"))], human: "\(error)")
        }
    }

    /// Ends ``run(for:)`` within a quarter of a second (it then leaves as usual).
    public func stop() { deadlineOverride = .now }

    /// True until the session ended (meeting over, removed, left, connection closed).
    public var isRunning: Bool { running }
}

// MARK: - Inspection (tests, diagnostics)

extension Participant {
    /// What opening a captured frame would do with this participant's current keys, on a
    /// copy of the key ring (nothing is counted or buffered).
    public func openAttempt(_ frame: FrameMessage) -> ReceiveResult {
        var copy = e2e.ring
        return copy.open(header: frame.header, payload: frame.payload, now: now)
    }
}

extension Participant {
    /// Seals a frame as this participant would send it, without sending it (tests that
    /// play a malicious relay, which would hold such a frame in flight).
    func makeFrame(kind: FrameKind, plaintext: [UInt8], to recipient: UInt16? = nil) throws -> FrameMessage {
        let to = recipient.map { ParticipantIndex($0) } ?? .everyone
        let payload = try e2e.sender.seal(kind: kind, recipient: to, plaintext: plaintext, now: now, epoch: .newest)
        return try FrameMessage(kind: kind, sender: ParticipantIndex(index), recipient: to, payload: payload)
    }
}
