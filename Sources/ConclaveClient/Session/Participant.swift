#if canImport(Glibc)
import Glibc
#endif
import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol
import ConclaveSystem
import NIOCore
import NIOPosix

/// What a participant does besides talking to the relay.
public struct ParticipantOptions: Sendable {
    public var displayName: String
    public var identity: PrivateIdentity
    public var tls: ClientTLS?
    /// Host: admit every knock at once.
    public var autoAdmit = false
    /// Audio to send (`tone:440`, `noise`, `silence`, or a WAV path).
    public var audioSource: AudioSourceSpec?
    /// Record the meeting, end-to-end encrypted (protocol/RECORDING.md), to this file
    /// (`--record`); it must not exist. Needs the recorder right (3.8); each member is
    /// recorded only after its signed consent.
    public var recordPath: String?
    /// Chat lines to send once keys are in place.
    public var say: [String] = []
    /// Unmute as soon as admitted (the relay mutes on entry by default).
    public var unmuteOnJoin = false
    /// Leader: draw a fresh epoch secret this often (milliseconds; nil keeps the default).
    public var rotationIntervalMillis: UInt64?
    /// Record as ``recordPath`` does, into a new file in this directory (`--record-dir`).
    public var recordDirectory: String?
    /// Days after which `conclave recording purge` deletes the recording (`--retain-days`).
    public var retainDays = 30
    /// Besides this client's identity, who can open the recording.
    public var recordingRecipients: [PublicIdentity] = []
    /// A passphrase that can open the recording too (Argon2id with these limits).
    public var recordingPassphrase: [UInt8]?
    public var recordingPassphraseLimits = PasswordHash.Limits.interactive
    /// How to answer other members' recording notices (`--consent-recording`,
    /// `--decline-recording`; by default the user answers with `/consent` or `/decline`).
    public var recordingConsent = RecordingConsentPolicy.ask
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
    /// When the relay connection drops without the meeting ending (its relay node died or
    /// drained, 5.10), reconnect and rejoin for this long; nil: end at once.
    public var failoverWindow: Duration?
    /// Other nodes of the relay's cluster to try on failover, after the invite's.
    public var fallbackRelays: [RelayEndpoint] = []
    /// The event loop this participant runs on: its connection, its UDP media path, its
    /// timers and the actor itself (nil: the next loop of ``ParticipantEventLoops``, one
    /// per core, so that the load runner's participants spread over the cores).
    public var eventLoop: (any EventLoop)?

    public init(displayName: String, identity: PrivateIdentity = .generate()) {
        self.displayName = displayName
        self.identity = identity
    }
}

/// How a participant's audio travels to the relay.
public enum MediaTransport: String, Sendable, CaseIterable {
    case udp
    case websocket = "ws"
}

/// Counts for one sender's audio, reported once a second as the `audio` event.
public struct AudioReceiveStats: Sendable, Equatable {
    public var frames = 0
    public var lost = 0
    public var late = 0
    public var decryptFailed = 0
    /// Decrypted, then dropped: more than 1 s later than this sender's frames usually
    /// arrive (``AudioAgeEstimator``).
    public var stale = 0
}

extension ParticipantSession.Configuration {
    init(_ options: ParticipantOptions) {
        self.init(displayName: options.displayName)
        autoAdmit = options.autoAdmit
        unmuteOnJoin = options.unmuteOnJoin
        rotationIntervalMillis = options.rotationIntervalMillis
        heartbeatIntervalMillis = options.heartbeatIntervalMillis
        leaderSilenceTimeoutMillis = options.leaderSilenceTimeoutMillis
        admissionBatchMillis = options.admissionBatchMillis
        recordingConsent = options.recordingConsent
    }
}

/// A participant: the driver of a ``ParticipantSession`` on a real relay connection.
///
/// The session decides (admissions, moderation, key schedule, timers, checks of every
/// relay event); this actor does the I/O around it: the WebSocket and the UDP media path,
/// the clock that ticks the session, audio capture and playout, screen reassembly, and
/// the events the CLI prints. Every action a session step returns is carried out in
/// order, and the frames it sealed are queued before this actor next suspends, so frames
/// reach the relay in the order they were sealed (3.2).
///
/// The relay sees only what section 1 of the protocol allows: the display name travels in
/// the sealed knock and the signed, end-to-end encrypted roster; chat and audio in SFrame.
public actor Participant {
    /// Where this actor runs: its connection's event loop, for its whole life (a failover
    /// reconnects on the same loop). Frames that arrive by UDP or WebSocket, the session
    /// step that opens them, the seal and the send all run on this one thread: no hop to
    /// another thread per frame, and the ticks are the loop's own timers.
    public nonisolated let eventLoop: any EventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { eventLoop.executor.asUnownedSerialExecutor() }
    public private(set) var connection: RelayConnection
    public nonisolated let identity: PrivateIdentity
    public nonisolated let roomID: RoomID
    let options: ParticipantOptions
    /// The room's settings as the host created it (a host re-creates the room with them).
    var createdSettings: RoomSettings?
    /// Relay nodes learned from redirects: tried on failover after the invite's.
    var knownRelays: [RelayEndpoint] = []
    /// Identities this host removed: refused if they knock after the room moved.
    var removedIdentities: Set<[UInt8]> = []
    /// Failovers completed, with the time each took (ms from losing the connection to
    /// being back in the room).
    public private(set) var failovers: [UInt64] = []
    let output: EventOutput
    let start = ContinuousClock.now

    /// The meeting's logic; this actor only carries out what it returns.
    var session: ParticipantSession
    var leader: LeaderKeySchedule? { session.leader }
    var member: MemberKeySchedule? { session.member }
    public var index: UInt16 { session.index }
    public var invite: Invite? { session.invite }
    var pendingSay: [String]
    var pendingShare: String?
    /// The encrypted recording being written (3.8), and what started it.
    var recordingFile: RecordingWriter?
    var recordingStartedAt = ContinuousClock.now
    /// `--record`/`--record-dir` or `/record on` asked for a recording.
    var recordingRequested = false
    var recordingRefusalReported = false
    /// A recording was asked for and refused (no right): the CLI exits non-zero.
    public private(set) var recordingRefused = false
    /// Recording files finished by this client.
    public private(set) var recordingsWritten: [String] = []
    var running = true
    var tickInProgress = false
    var tickHeldBack = false
    /// Audio frames handled inline on the event loop (``handleInline(_:)``), not through the queue.
    public private(set) var inlineAudioFrames = 0
    var toldMuted = false
    var nextWake: UInt64?

    /// Alerts raised about what the relay claimed (code, message).
    public private(set) var alerts: [(code: String, message: String)] = []
    /// Key material rejected (a substituted key package, roster or host key).
    public private(set) var rejections: [String] = []
    /// Every security code shown.
    public private(set) var securityCodes: [String] = []
    /// Chat lines received: (sender, text, private).
    public private(set) var chatLog: [(from: UInt16, text: String, isPrivate: Bool)] = []

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
    var audioStats: [UInt16: AudioReceiveStats] = [:]
    var lastAudioReport: UInt64 = 0
    /// Drops audio that waited too long before it reached this client (kernel buffers,
    /// relay queues), which the inbound queue's own stale check cannot see.
    var audioAge = AudioAgeEstimator()
    /// The inbound queue's counts at the last `overload` report.
    var lastInbound = InboundStatistics()
    var lastInboundReport: UInt64 = 0

    /// What the key ring counted for frames the relay forwarded to us (opened, buffered, each
    /// drop reason), less the frames of epochs from before our admission, which a late joiner
    /// must not be able to read and which are therefore not failures.
    public var receiveCounters: ReceiveCounters {
        var c = session.e2e.ring.counters
        c.unknownEpoch -= session.framesBeforeJoin
        return c
    }
    /// Frames under epochs older than the first we held (sent before our admission).
    public var framesBeforeJoin: Int { session.framesBeforeJoin }

    init(connection: RelayConnection, session: ParticipantSession, options: ParticipantOptions, output: EventOutput) throws {
        self.eventLoop = connection.channel.eventLoop
        self.connection = connection
        self.identity = session.identity
        self.roomID = session.roomID
        self.session = session
        self.options = options
        self.output = output
        self.pendingSay = options.say
        self.pendingShare = options.sharePath
        self.recordingRequested = options.recordPath != nil || options.recordDirectory != nil
        self.mixer = try ReceiveMixer(configuration: ReceiveMixerConfiguration())
        self.chunker = try ScreenChunker()
        if let spec = options.audioSource {
            self.audio = try AudioSendPipeline(source: try AudioSource(spec: spec, loop: true), configuration: options.audioSendConfiguration)
        }
    }

    /// Milliseconds since this participant started (the session's clock).
    var now: UInt64 {
        let d = ContinuousClock.now - start
        return UInt64(d.components.seconds) * 1000 + UInt64(d.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: - Starting

    /// Creates a room as its host and leader; emits `invite`.
    public static func host(
        relay: RelayEndpoint, password: String?, settings: RoomSettings,
        options: ParticipantOptions, output: EventOutput
    ) async throws -> Participant {
        // The host proposes the room id, so the identity proof and relay_auth bind to it (4.1, 5.4).
        var proposed = RoomID.zero
        while proposed == .zero { proposed = RoomID(bytes: SecureRandom.bytes(count: MessageLimits.roomIDLength))! }
        // The invite names the relay the host was given; relay_auth binds to that origin even
        // when a cluster redirects the host to another node (5.10).
        let origin = Invite.relayOrigin(secure: relay.usesTLS, host: relay.host, port: relay.port)
        let auth = try password.map { try Invite.relayAuth(password: $0, roomID: proposed, relayOrigin: origin) }
        let secret = Invite.randomSecret()
        let (connection, created, servedBy) = try await createRoom(proposed, through: relay, relayAuth: auth, settings: settings, options: options)
        guard created.roomID == proposed else {
            await connection.close()
            throw SessionError.protocolViolation("the relay created room \(created.roomID.base64URL), not the proposed \(proposed.base64URL)")
        }
        let invite = Invite(
            secure: relay.usesTLS, host: relay.host, port: relay.port, roomID: created.roomID,
            hostIdentity: options.identity.publicIdentity, secret: secret, password: password)
        output.emit("invite", [("invite", .string(invite.text))], human: "invite: \(invite.text)")
        let (session, actions) = try ParticipantSession.host(
            roomID: created.roomID, index: created.index.rawValue, identity: options.identity,
            invite: invite, waitingRoom: settings.waitingRoom,
            configuration: .init(options), now: 0)
        let p = try Participant(connection: connection, session: session, options: options, output: output)
        await p.learned(servedBy, settings: settings)
        await p.carryOut(actions)
        return p
    }

    /// `CREATE_ROOM` for `roomID` through `endpoint`, following redirects: the connection,
    /// `ROOM_CREATED` and the node that answered.
    static func createRoom(
        _ roomID: RoomID, through endpoint: RelayEndpoint, relayAuth: [UInt8]?, settings: RoomSettings,
        options: ParticipantOptions
    ) async throws -> (RelayConnection, RoomCreatedMessage, RelayEndpoint) {
        try await RelayHandshake.enter(
            endpoint, tls: options.tls, what: "ROOM_CREATED", eventLoop: options.eventLoop,
            request: { challenge in
                .createRoom(
                    CreateRoomMessage(
                        roomID: roomID, identity: options.identity.publicIdentity.wireIdentity,
                        signature: try RelayHandshake.proof(identity: options.identity, challenge: challenge, room: roomID),
                        relayAuth: relayAuth, settings: settings))
            },
            pick: {
                if case .roomCreated(let c) = $0 { return c }; return nil
            })
    }

    /// `JOIN` for `roomID` through `endpoint`, following redirects: the connection, the
    /// `WAITING` or `ADMITTED` that answered, and the node that sent it.
    static func joinRoom(
        _ roomID: RoomID, through endpoint: RelayEndpoint, relayAuth: [UInt8]?, knock: [UInt8],
        options: ParticipantOptions
    ) async throws -> (RelayConnection, RelayMessage, RelayEndpoint) {
        try await RelayHandshake.enter(
            endpoint, tls: options.tls, what: "WAITING or ADMITTED", eventLoop: options.eventLoop,
            request: { challenge in
                .join(
                    JoinMessage(
                        roomID: roomID, identity: options.identity.publicIdentity.wireIdentity,
                        signature: try RelayHandshake.proof(identity: options.identity, challenge: challenge, room: roomID),
                        relayAuth: relayAuth, knock: knock))
            },
            pick: { m -> RelayMessage? in
                switch m {
                case .waiting, .admitted: return m;
                default: return nil
                }
            })
    }

    /// A knock from `index` waits for this leader's decision.
    public func hasPendingKnock(_ index: UInt16) -> Bool { session.pendingKnocks[index] != nil }

    /// The relay node this participant is connected to now (after any redirect).
    public private(set) var servedBy: RelayEndpoint?

    func learned(_ endpoint: RelayEndpoint, settings: RoomSettings? = nil) {
        if let settings { createdSettings = settings }
        servedBy = endpoint
        if !knownRelays.contains(endpoint) { knownRelays.append(endpoint) }
    }

    /// Joins with an invite: knocks (sealed to the host), waits in the waiting room if
    /// there is one; emits `waiting` and later `admitted`.
    public static func join(invite: Invite, options: ParticipantOptions, output: EventOutput) async throws -> Participant {
        let endpoint = RelayEndpoint(scheme: invite.secure ? .wss : .ws, host: invite.host, port: invite.port)
        let (knock, nonce) = try Knock.seal(
            roomID: invite.roomID, displayName: options.displayName, joiner: options.identity,
            host: invite.hostIdentity.agreementKey, inviteSecret: invite.secret)
        let auth = try invite.password.map { try Invite.relayAuth(password: $0, roomID: invite.roomID, relayOrigin: invite.relayURL) }
        // The invite's relay first; when it cannot be reached, the other nodes of its
        // cluster that the user named (5.10).
        var result: (RelayConnection, RelayMessage, RelayEndpoint)?
        var unreachable: Error?
        for candidate in [endpoint] + options.fallbackRelays.filter({ $0 != endpoint }) {
            do {
                result = try await joinRoom(invite.roomID, through: candidate, relayAuth: auth, knock: knock, options: options)
                break
            } catch let error as SessionError {
                guard case .relayUnreachable = error else { throw error }
                unreachable = error
            }
        }
        guard let (connection, first, servedBy) = result else { throw unreachable ?? SessionError.relayUnreachable("no relay to try") }
        let index: UInt16
        switch first {
        case .waiting(let w): index = w.index.rawValue
        case .admitted(let a): index = a.index.rawValue
        default: throw SessionError.protocolViolation("unexpected answer to JOIN")
        }
        let session = ParticipantSession(
            roomID: invite.roomID, index: index, identity: options.identity, invite: invite,
            joinNonce: nonce, configuration: .init(options))
        let p = try Participant(connection: connection, session: session, options: options, output: output)
        await p.learned(servedBy)
        if case .waiting = first {
            output.emit("waiting", [("participant", .int(Int(index)))], human: "waiting for the host to admit you (you are #\(index))")
        } else if case .admitted(let a) = first {
            await p.handle(.admitted(a))
        }
        return p
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
        let every: UInt64 = (audio == nil && options.probe != nil) ? 20 : 4  // LoopTicker's 5 ms ticks
        // Ticks come from the loop's one shared timer (``LoopTicker``): every 20 or 100 ms.
        let ticker = LoopTicker.of(eventLoop)
        let tickToken = ticker.add(self, every: every)
        installInlineAudio()
        defer { ticker.remove(tickToken) }
        while running, ContinuousClock.now < deadlineOverride {
            let item: RelayInbound?
            do {
                item = try await connection.next(timeout: min(deadlineOverride - ContinuousClock.now, .milliseconds(250)))
            } catch {
                continue
            }
            guard let item else {
                if running, await failover(preferred: nil) { continue }
                break
            }
            if case .closed = item, running, await failover(preferred: nil) { continue }
            if case .message(.redirect(let r)) = item, r.reason == .draining, running {
                // The node is draining: move now rather than wait for it to close (5.10).
                let preferred = try? RelayHandshake.next(after: knownRelays.last ?? entryEndpoint, r, hops: 1)
                if await failover(preferred: preferred) { continue }
                running = false
                break
            }
            await handle(item)
        }
        ticker.remove(tickToken)
        connection.setInlineAudioConsumer(nil)
        recordingRequested = false
        if session.isRecording { await carryOut(session.stopRecording(now: now, reason: "this client left the meeting")) }
        finishRecordingFile()
        if running { await carryOut(session.leave(now: now)) }
        reportAudio(force: true)
        await mediaPath?.close()
        await connection.close()
    }

    /// Sends a chat line (broadcast, end-to-end encrypted), or a private message.
    public func say(_ text: String, to recipient: UInt16? = nil) async throws {
        guard session.canSeal(now: now) else { pendingSay.append(text); return }
        await carryOut(try session.chat(text, to: recipient, now: now))
    }

    /// Sends a command to the relay. As leader, the decisions that the signed roster
    /// carries take effect end to end at once, whatever the relay later reports (3.6):
    /// admission approvals, removals (a fresh epoch without the removed member), roles,
    /// presenter rights, and a transfer of the host role (a signed `HANDOVER` first).
    public func command(_ action: CommandAction) async throws {
        if case .remove(let i) = action, let removed = session.peerIdentity(i.rawValue) {
            removedIdentities.insert(removed.signingKey.rawRepresentation)
        }
        await carryOut(session.command(action, now: now))
    }

    var deadlineOverride = ContinuousClock.now

    /// The current security code, if keys are in place.
    public var securityCode: String? { session.securityCode }

    // MARK: - Carrying out the session's actions

    /// Carries out one step's actions in order. Events are shown and frames queued without
    /// suspending; then the queue drains and the opened frames are delivered.
    func carryOut(_ actions: [ParticipantSession.Action]) async {
        await finishCarryOut(beginCarryOut(actions))
    }

    /// What ``beginCarryOut(_:)`` left for ``finishCarryOut(_:)``.
    struct CarryOut: Sendable {
        /// The outgoing queue's count once this carry-out's messages were queued (nil: none).
        var sentUpTo: UInt64?
        var delivered: [ReceivedFrame] = []
        var media: MediaSessionMessage?
        static let none = CarryOut()
    }

    /// The part of carrying out a session's actions that must not wait: events, wakes, and
    /// its messages queued for the wire. Synchronous, so that the order in which the session
    /// decided things is the order they are sent in, whatever runs on this actor before the
    /// sending task does. (A tick that keyed a batch of admissions once queued its key
    /// packages from a task of its own; a relay event handled first made a newer roster
    /// delta that overtook them, and the new member ignored it and fell a version behind.)
    func beginCarryOut(_ actions: [ParticipantSession.Action]) -> CarryOut {
        guard !actions.isEmpty else { return .none }
        var outbound: [ClientMessage] = []
        var result = CarryOut()
        for action in actions {
            switch action {
            case .send(let message):
                if case .frame(let f) = message { options.outboundTap?(f) }
                outbound.append(message)
            case .deliver(let frame): result.delivered.append(frame)
            case .event(let event): show(event)
            case .wake(let at): schedule(wakeAt: at)
            case .openMediaPath(let session): result.media = session
            case .end: running = false
            case .recording(let r): recordingAction(r)
            }
        }
        if !outbound.isEmpty {
            do { result.sentUpTo = try queueOutgoing(outbound) } catch {
                output.emit("error", [("code", .string("internal")), ("message", .string("send failed: \(error)"))], human: "send failed: \(error)")
            }
        }
        return result
    }

    /// The rest: waits until the messages are sent, then delivers frames and opens the media path.
    func finishCarryOut(_ c: CarryOut) async {
        if let upTo = c.sentUpTo {
            do { try await sendQueued(upTo: upTo) } catch {
                output.emit("error", [("code", .string("internal")), ("message", .string("send failed: \(error)"))], human: "send failed: \(error)")
            }
        }
        for frame in c.delivered { deliver(frame) }
        if let media = c.media { await openMediaPath(media) }
    }

    /// Shows a session event and keeps alerts, rejections and security codes for inspection.
    func show(_ event: SessionEvent) {
        switch event {
        case let .alert(code, message):
            if alerts.count >= ParticipantSession.retainedReports { alerts.removeFirst(alerts.count / 2) }
            alerts.append((code.rawValue, message))
        case let .keyRejected(what):
            if rejections.count >= ParticipantSession.retainedReports { rejections.removeFirst(rejections.count / 2) }
            rejections.append(what)
        case let .epoch(e, code):
            options.probe?.epochInstalled(e)
            securityCodes.append(code)
        default: break
        }
        let r = event.render(me: session.index)
        output.emit(r.name, r.fields, human: r.human)
    }

    /// One tick, synchronously on the loop when it needs nothing but the UDP media path
    /// (the steady state: seal one audio frame, hand it to the socket); otherwise, in order,
    /// in a task on this actor (``mediaTick(now:first:)``).
    func tick() {
        guard running else { return }
        // A tick still awaiting (a WebSocket send, a ping): this one runs when it is done,
        // at most one held back, so a slow send costs no frame and never causes a burst.
        guard !tickInProgress else { return tickHeldBack = true }
        let nowMs = now
        let actions = session.tick(now: nowMs)
        if actions.isEmpty, !tickNeedsAwait(now: nowMs) {
            tickMedia(now: nowMs)
            return
        }
        tickInProgress = true
        // Queued now, before anything else on this actor can queue a message after them.
        let begun = beginCarryOut(actions)
        Task {
            await self.mediaTick(now: nowMs, first: begun)
            self.tickInProgress = false
            if self.tickHeldBack {
                self.tickHeldBack = false
                self.tick()
            }
        }
    }

    /// Whether this tick must await something: a send on the WebSocket, a ping, pending
    /// chat or share, starting a recording.
    func tickNeedsAwait(now nowMs: UInt64) -> Bool {
        if pendingShare != nil || !pendingSay.isEmpty, inSession({ $0.canSeal(now: nowMs) && $0.hasOthers }) { return true }
        if nowMs >= lastPing + 15_000 { return true }
        if running, recordingRequested, inSession({ !$0.isRecording && $0.hasKeys }), inSession({ $0.mayRecord }) || !recordingRefusalReported {
            return true
        }
        // Audio to send without a live UDP path goes on the WebSocket, in order.
        if audio != nil, !(mediaPath?.isUp ?? false), inSession({ $0.maySendAudio(now: nowMs) }) { return true }
        return false
    }

    /// Offers the connection's inbound queue this actor as the inline consumer of audio
    /// frames (``RelayWebSocketHandler/inlineAudioConsumer``): a frame that arrives while
    /// the run loop waits with nothing queued is opened right there, on the loop.
    func installInlineAudio() {
        connection.setInlineAudioConsumer { [weak self] item in
            guard let self else { return false }
            return self.assumeIsolated { $0.handleInline(item) }
        }
    }

    /// An audio frame, handled synchronously on the loop as ``handle(_:)-(RelayInbound)``
    /// would (the test taps included); false leaves the item to the queue.
    func handleInline(_ item: RelayInbound) -> Bool {
        guard running, case .message(let m) = item, case .frame(let f) = m, f.header.kind == .audio else { return false }
        options.inboundTap?(m)
        inlineAudioFrames += 1
        if let drop = options.inboundDrop, drop(m) { return true }
        let actions = receive(frame: f)
        if !actions.isEmpty {
            // An audio frame's outcome carries no actions today; if one ever does, its
            // messages are queued now, in order.
            let begun = beginCarryOut(actions)
            Task { await self.finishCarryOut(begun) }
        }
        return true
    }

    /// Ticks the session at `at` (an admission batch, a co-host's approval deadline).
    func schedule(wakeAt at: UInt64) {
        if let pending = nextWake, pending <= at { return }
        nextWake = at
        let delay = at > now ? at - now : 0
        Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(delay))
            await self?.wake(at)
        }
    }

    func wake(_ at: UInt64) async {
        if nextWake == at { nextWake = nil }
        await carryOut(session.tick(now: now))
    }

    // MARK: - Failover (5.10)

    /// The relay the invite names (where joiners go first).
    var entryEndpoint: RelayEndpoint {
        if let invite = session.invite { return RelayEndpoint(scheme: invite.secure ? .wss : .ws, host: invite.host, port: invite.port) }
        return knownRelays.first ?? RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: 7443)
    }

    /// This client created the room: it re-creates it after a move.
    var isRoomOwner: Bool { session.invite?.hostIdentity == identity.publicIdentity && createdSettings != nil }

    /// The connection dropped without the meeting ending (no fatal `ERROR`): its relay node
    /// died, or drains. Reconnects through the cluster, the owner re-creating the room under
    /// the same id and the others rejoining, with a fresh session and so a fresh epoch: no
    /// key, roster or leadership carries over on the relay's word. True when back in the room.
    func failover(preferred: RelayEndpoint?) async -> Bool {
        guard let window = options.failoverWindow, session.endedBy == nil, session.invite != nil else { return false }
        let lost = now
        output.emit("reconnecting", [("reason", .string("the relay connection was lost"))], human: "relay connection lost; reconnecting for up to \(window)")
        await mediaPath?.close()
        mediaPath = nil
        await connection.close()
        // Who was here before the move: the owner lets them back in, and no one it removed.
        var previous: Set<[UInt8]> = []
        for i in session.roster.map(\.index) where i != session.index {
            if let id = session.peerIdentity(i) { previous.insert(id.signingKey.rawRepresentation) }
        }
        var candidates: [RelayEndpoint] = []
        for e in [preferred].compactMap({ $0 }) + [entryEndpoint] + knownRelays + options.fallbackRelays where !candidates.contains(e) {
            candidates.append(e)
        }
        let deadline = ContinuousClock.now + window
        var pause = Duration.milliseconds(100)
        while ContinuousClock.now < deadline, ContinuousClock.now < deadlineOverride {
            for endpoint in candidates where ContinuousClock.now < deadline {
                do {
                    try await rejoin(through: endpoint, readmit: previous)
                    installInlineAudio()  // on the new connection
                    let took = now - lost
                    failovers.append(took)
                    output.emit(
                        "rehomed", [("ms", .int(Int(took)))], human: "back in the meeting after \(took) ms (a fresh epoch; compare the security code again)")
                    return true
                } catch {
                    continue
                }
            }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(1))
        }
        return false
    }

    /// One attempt: the owner re-creates the room, anyone else joins it again.
    private func rejoin(through endpoint: RelayEndpoint, readmit: Set<[UInt8]>) async throws {
        guard let invite = session.invite else { throw SessionError.protocolViolation("no invite to rejoin with") }
        var configuration = ParticipantSession.Configuration(options)
        var options = self.options
        let roomID = self.roomID
        options.eventLoop = eventLoop  // the actor runs on this loop: so does every connection
        if isRoomOwner, let settings = createdSettings {
            configuration.readmit = readmit
            configuration.refuse = removedIdentities
            let auth = try invite.password.map { try Invite.relayAuth(password: $0, roomID: roomID, relayOrigin: invite.relayURL) }
            let (connection, created, servedBy) = try await Self.createRoom(roomID, through: endpoint, relayAuth: auth, settings: settings, options: options)
            guard created.roomID == roomID else {
                await connection.close()
                throw SessionError.protocolViolation("the relay re-created another room")
            }
            let (fresh, actions) = try ParticipantSession.host(
                roomID: roomID, index: created.index.rawValue, identity: options.identity,
                invite: invite, waitingRoom: settings.waitingRoom, configuration: configuration, now: now)
            self.connection = connection
            lastInbound = InboundStatistics()  // the new connection counts from zero
            self.session = fresh
            learned(servedBy)
            await carryOut(actions)
        } else {
            let (knock, nonce) = try Knock.seal(
                roomID: roomID, displayName: options.displayName, joiner: options.identity,
                host: invite.hostIdentity.agreementKey, inviteSecret: invite.secret)
            let auth = try invite.password.map { try Invite.relayAuth(password: $0, roomID: roomID, relayOrigin: invite.relayURL) }
            let (connection, first, servedBy) = try await Self.joinRoom(roomID, through: endpoint, relayAuth: auth, knock: knock, options: options)
            let index: UInt16
            switch first {
            case .waiting(let w): index = w.index.rawValue
            case .admitted(let a): index = a.index.rawValue
            default: throw SessionError.protocolViolation("unexpected answer to JOIN")
            }
            self.connection = connection
            lastInbound = InboundStatistics()  // the new connection counts from zero
            self.session = ParticipantSession(
                roomID: roomID, index: index, identity: options.identity, invite: invite,
                joinNonce: nonce, configuration: configuration)
            learned(servedBy)
            if case .admitted(let a) = first { await handle(.admitted(a)) }
        }
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
        guard case .frame(let f) = message else {
            await carryOut(session.receive(message, now: now))
            return
        }
        await carryOut(receive(frame: f))
    }

    /// A frame through the session: opened and delivered, or counted as dropped. Returns
    /// the session's actions (none for audio, screen and chat frames).
    func receive(frame f: FrameMessage) -> [ParticipantSession.Action] {
        let sender = f.header.sender.rawValue
        if f.header.kind == .audio, let probe = options.probe, !probe.audioArrived(from: sender) { return [] }
        let outcome = session.receiveFrame(f, now: now)
        if let frame = outcome.opened {
            deliver(frame)
        } else if let reason = outcome.dropped {
            if f.header.kind == .audio {
                if outcome.beforeJoin {
                    options.probe?.audioBeforeJoin(from: sender)
                } else {
                    options.probe?.audioDropped(from: sender, reason: reason)
                    if let detail = outcome.unknownEpoch { options.probe?.audioUnknownEpoch(from: sender, detail) }
                }
            }
            if !outcome.beforeJoin, f.header.kind == .audio, reason == .decryptFailed || reason == .noKey || reason == .unknownEpoch {
                audioStats[sender, default: AudioReceiveStats()].decryptFailed += 1
            }
        }
        return outcome.actions
    }

    func deliver(_ frame: ReceivedFrame) {
        switch frame.header.kind {
        case .audio:
            let header = try? AudioPacket.decode(frame.plaintext).header
            if let header, audioAge.isStale(sender: frame.sender, sendTimeMicros: header.sendTimeMicros, nowMicros: Self.monotonicMicros()) {
                audioStats[frame.sender, default: AudioReceiveStats()].stale += 1
                options.probe?.audioStale(from: frame.sender)
                return
            }
            audioStats[frame.sender, default: AudioReceiveStats()].frames += 1
            if recordingFile != nil, session.isRecorded(frame.sender) { recordAudio(frame.sender, packet: frame.plaintext) }
            if let probe = options.probe {
                if let header {
                    probe.audioDecrypted(from: frame.sender, sendTimeMicros: header.sendTimeMicros)
                }
                return
            }
            _ = try? mixer.receive(sender: frame.sender, packetBytes: frame.plaintext, nowMicros: Self.monotonicMicros())
        case .chat:
            guard let text = String(validating: frame.plaintext, as: UTF8.self), !text.isEmpty else { return }
            let isPrivate = frame.header.recipient != .everyone
            let name = session.name(of: frame.sender)
            chatLog.append((frame.sender, text, isPrivate))
            if let file = recordingFile, session.isRecorded(frame.sender) {
                do { try file.chat(index: frame.sender, atMillis: recordingMillis, isPrivate: isPrivate, text: text) } catch { recordingFailed(error) }
            }
            output.emit(
                "chat", [("from", .int(Int(frame.sender))), ("name", .string(name)), ("text", .string(text)), ("private", .bool(isPrivate))],
                human: "\(name) (#\(frame.sender)\(isPrivate ? ", private" : "")): \(text)")
        case .screen:
            receiveScreen(frame)
        case .control, .keys:
            break
        }
    }

    /// Screen chunks from a presenter of the verified roster are reassembled; anyone
    /// else's are dropped even if the relay forwarded them (2.6).
    func receiveScreen(_ frame: ReceivedFrame) {
        guard session.isPresenter(frame.sender) else { screenFromNonPresenters += 1; return }
        if reassemblers[frame.sender] == nil { reassemblers[frame.sender] = try? ScreenReassembler() }
        guard var r = reassemblers[frame.sender] else { return }
        let outcome = try? r.receive(frame.plaintext)
        reassemblers[frame.sender] = r
        guard case .completed(let object)? = outcome else { return }
        let digest = Hex.encode(SHA2.sha256(object.bytes))
        sharesReceived.append((frame.sender, object.byteCount, digest))
        if let dir = options.saveSharesDirectory {
            let path = "\(dir)/share-\(frame.sender)-\(object.shareID).bin"
            if (try? LocalFile.write(object.bytes, to: path)) == nil {
                output.emit("error", [("code", .string("internal")), ("message", .string("cannot save \(path)"))], human: "cannot save \(path)")
            }
        }
        let name = session.name(of: frame.sender)
        output.emit(
            "share", [("from", .int(Int(frame.sender))), ("bytes", .int(object.byteCount)), ("sha256", .string(digest))],
            human: "\(name) shared \(object.byteCount) bytes, sha256 \(digest)")
    }

    /// Sends a file as screen frames (needs presenter rights at the relay and in the roster).
    public func share(path: String) async throws {
        guard session.hasKeys else { throw SessionError.refused(.notAllowed, "no keys yet; share after admission") }
        let bytes = try Self.readShareFile(path)
        let chunks = try chunker.chunks(for: bytes)
        for (i, chunk) in chunks.enumerated() {
            let frame = try session.seal(.screen, to: .everyone, plaintext: chunk, now: now, epoch: .newest)
            try await sendFrame(frame)
            if i % 32 == 31 { try await Task.sleep(for: .milliseconds(50)) }  // stay inside the relay's frame rate
        }
        let digest = Hex.encode(SHA2.sha256(bytes))
        output.emit(
            "share_sent", [("bytes", .int(bytes.count)), ("sha256", .string(digest)), ("frames", .int(chunks.count))],
            human: "shared \(path): \(bytes.count) bytes in \(chunks.count) frames, sha256 \(digest)")
    }

    /// Reads a file to share; at most 64 MiB, checked before reading it whole.
    static func readShareFile(_ path: String) throws -> [UInt8] {
        let limit = 64 * 1024 * 1024
        guard let size = try? LocalFile.size(of: path) else { throw SessionError.refused(.notAllowed, "cannot read \(path)") }
        guard size > 0, size <= limit else { throw SessionError.refused(.notAllowed, "\(path) must be 1 byte to 64 MiB") }
        guard let bytes = try? LocalFile.read(path, limit: limit) else { throw SessionError.refused(.notAllowed, "cannot read \(path)") }
        return bytes
    }

    // MARK: - Outbound

    /// Frames and commands of session steps, sent strictly in the order they were returned,
    /// by one drainer. Bounded: at most ``outgoingLimit`` messages (a few rekeys of a
    /// 500-member room).
    var outgoing: [ClientMessage] = []
    var outgoingDraining = false
    /// Messages handed to ``sendInOrder(_:)`` and messages sent (or dropped) since the start.
    var outgoingQueued: UInt64 = 0
    var outgoingDone: UInt64 = 0
    var outgoingWaiters: [(until: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    static let outgoingLimit = 8_192

    /// Sends `messages` after every message queued before them; returns once they are
    /// sent. They join the queue before the first suspension, so the order in which
    /// callers reach this is the order on the wire. A send that fails (the connection
    /// closed) drops what is queued.
    func sendInOrder(_ messages: [ClientMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await sendQueued(upTo: queueOutgoing(messages))
    }

    /// Queues `messages` behind everything queued before (synchronously: the order of calls
    /// is the order on the wire) and returns the queue's count with them, for
    /// ``sendQueued(upTo:)``.
    func queueOutgoing(_ messages: [ClientMessage]) throws -> UInt64 {
        guard outgoing.count + messages.count <= Self.outgoingLimit else {
            throw SessionError.refused(.internal, "more than \(Self.outgoingLimit) messages waiting to be sent")
        }
        outgoing += messages
        outgoingQueued += UInt64(messages.count)
        return outgoingQueued
    }

    /// Returns once the queue's first `upTo` messages are sent (or dropped by a failed
    /// send), sending them itself when no other caller is.
    func sendQueued(upTo mine: UInt64) async throws {
        guard outgoingDone < mine else { return }
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
            // Everything queued so far goes out in one write.
            let batch = outgoing
            outgoing = []
            try await connection.send(batch)
            outgoingDone += UInt64(batch.count)
            if outgoingWaiters.contains(where: { $0.until <= outgoingDone }) {
                for w in outgoingWaiters where w.until <= outgoingDone { w.continuation.resume() }
                outgoingWaiters.removeAll { $0.until <= outgoingDone }
            }
        }
    }

    /// `--say` lines and `--share` go out once a sending epoch is active and someone else
    /// can read them.
    func flushPending(now nowMs: UInt64) async {
        guard pendingShare != nil || !pendingSay.isEmpty, session.canSeal(now: nowMs), session.hasOthers else { return }
        if let path = pendingShare {
            pendingShare = nil
            do { try await share(path: path) } catch {
                output.emit("error", [("code", .string("not_allowed")), ("message", .string("\(error)"))], human: "share failed: \(error)")
            }
        }
        guard !pendingSay.isEmpty else { return }
        let lines = pendingSay
        pendingSay = []
        for line in lines {
            do { try await say(line) } catch {
                output.emit("error", [("code", .string("internal")), ("message", .string("chat not sent: \(error)"))], human: "chat not sent: \(error)")
            }
        }
    }

    // MARK: - Media

    /// A tick that awaits: the session's actions first, then pending chat and share, the
    /// keepalive ping, a recording to start, and the rest as ``tickMedia(now:)``.
    func mediaTick(now nowMs: UInt64, first begun: CarryOut) async {
        await finishCarryOut(begun)
        guard running else { return }
        await flushPending(now: nowMs)
        // With audio on UDP the WebSocket can be quiet for long; a PING keeps the relay's
        // idle timeout from closing it.
        if nowMs >= lastPing + 15_000 {
            lastPing = nowMs
            try? await connection.send(.ping(nonce: nowMs))
        }
        await startRecordingIfWanted(now: nowMs)
        guard running else { return }
        if let frame = tickAudio(now: nowMs), !(mediaPath?.send(frame: ClientMessage.frame(frame).encoded()) ?? false) {
            try? await connection.send(.frame(frame))
        }
        tickReports(now: nowMs)
    }

    /// The tick's synchronous part: this tick's audio frame to the UDP path, and reports.
    func tickMedia(now nowMs: UInt64) {
        if let frame = tickAudio(now: nowMs) {
            // ``tickNeedsAwait(now:)`` found the path up; if it went down since, this frame is lost.
            _ = mediaPath?.send(frame: ClientMessage.frame(frame).encoded())
        }
        tickReports(now: nowMs)
    }

    /// The muted notice, and this tick's audio frame sealed (nil: nothing to send).
    func tickAudio(now nowMs: UInt64) -> FrameMessage? {
        if audio != nil, session.mutedSelf, session.admitted, !toldMuted {
            toldMuted = true
            output.emit("muted", [("participant", .int(Int(index)))], human: "you are muted: not sending audio (/unmute)")
        }
        if !session.mutedSelf { toldMuted = false }
        guard let audio, inSession({ $0.maySendAudio(now: nowMs) }), options.probe?.mayTalk ?? true,
            let packet = try? audio.nextPacket(nowMicros: Self.monotonicMicros()),
            let frame = try? session.seal(.audio, to: .everyone, plaintext: packet, now: nowMs)
        else { return nil }
        options.outboundTap?(frame)
        options.probe?.audioSent()
        // `index` reads the session: taken before the in-place access, which is exclusive.
        let own = index
        if recordingFile != nil, inSession({ $0.isRecorded(own) }) { recordAudio(own, packet: packet) }
        return frame
    }

    /// Runs `body` on the session in place. A non-mutating method of the session called on
    /// this actor's stored property (`session.maySendAudio(…)`) copies the whole struct first,
    /// retaining every reference inside it, and releases the copy after: on the per-frame
    /// path that was 2 % of the load runner's CPU. Through `inout` there is no copy. The
    /// access is exclusive: `body` must not read this actor's session-backed properties.
    @inline(__always)
    func inSession<T>(_ body: (inout ParticipantSession) -> T) -> T { body(&session) }

    func tickReports(now nowMs: UInt64) {
        if nowMs >= lastInboundReport + 1000 { reportInbound(now: nowMs) }
        guard options.probe == nil else { return }
        _ = mixer.tick()
        reportAudio(force: false)
    }

    /// Once a second, if this client fell behind and its inbound queue dropped media
    /// (stale audio, or media over the queue's limit): the `overload` event, so the loss is
    /// reported rather than hidden.
    func reportInbound(now nowMs: UInt64) {
        lastInboundReport = nowMs
        let s = connection.inboundStatisticsOnLoop()
        let (stale, overflow) = s.drops(since: lastInbound)
        lastInbound = s
        guard stale + overflow > 0 else { return }
        output.emit(
            "overload",
            [
                ("dropped_stale", .int(Int(stale))), ("dropped_overflow", .int(Int(overflow))),
                ("peak_queued", .int(s.peakQueuedMedia)),
            ],
            human: "falling behind: dropped \(stale) stale audio frames and \(overflow) over the queue limit in the last second")
    }

    /// The inbound queue's drops and peak depths so far.
    public func inboundStatistics() async -> InboundStatistics {
        await connection.inboundStatistics()
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
            output.emit(
                "audio",
                [
                    ("from", .int(Int(s))), ("frames", .int(stats.frames)), ("lost", .int(stats.lost)),
                    ("late", .int(stats.late)), ("stale", .int(stats.stale)), ("decrypt_failed", .int(stats.decryptFailed)),
                ],
                human:
                    "audio from #\(s): \(stats.frames) frames, \(stats.lost) lost, \(stats.late) late, \(stats.stale) stale, \(stats.decryptFailed) failed to decrypt"
            )
        }
    }

    /// Sends a frame of this client's own outside the ordered queue: audio by UDP while the
    /// path is up; everything else (and audio without a path) on the WebSocket, which is
    /// reliable and ordered.
    func sendFrame(_ frame: FrameMessage) async throws {
        options.outboundTap?(frame)
        if frame.header.kind == .audio, let mediaPath, mediaPath.send(frame: ClientMessage.frame(frame).encoded()) {
            return
        }
        try await connection.send(.frame(frame))
    }

    func openMediaPath(_ session: MediaSessionMessage) async {
        guard options.mediaTransport == .udp, mediaPath == nil else { return }
        do {
            mediaPath = try await MediaPath.open(session, connection: connection, options: options.mediaPathOptions)
            output.emit(
                "media_path", [("transport", .string("udp")), ("port", .int(Int(session.port)))],
                human: "media path: UDP to port \(session.port) (WebSocket while it does not answer)")
        } catch {
            output.emit(
                "media_path", [("transport", .string("ws")), ("message", .string("\(error)"))],
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
                for (i, n, role) in session.roster {
                    output.emit(
                        "member", [("participant", .int(Int(i))), ("name", .string(n)), ("role", .string(role))],
                        human: "#\(i) \(n.isEmpty ? "(no name)" : n) \(role)\(i == index ? " (you)" : "")")
                }
            case .code:
                let code = securityCode ?? "(no keys yet)"
                output.emit("code", [("security_code", .string(code))], human: "security code: \(code)")
            case .help:
                output.emit("help", human: ConsoleCommand.helpText)
            case .share(let path):
                try await share(path: path)
            case .record(let on):
                if on {
                    recordingRequested = true
                    recordingRefusalReported = false
                    await startRecordingIfWanted(now: now)
                } else {
                    recordingRequested = false
                    await carryOut(session.stopRecording(now: now, reason: "stopped by the user"))
                }
            case .answerRecording(let consent):
                await carryOut(session.answerRecording(consent ? .consent : .decline, now: now))
            case .setRecorder(let i, let granted):
                await carryOut(session.setRecorder(i, granted, now: now))
            }
        } catch {
            output.emit("error", [("code", .string("internal")), ("message", .string("\(error)"))], human: "\(error)")
        }
    }

    /// Ends ``run(for:)`` within a quarter of a second (it then leaves as usual).
    public func stop() { deadlineOverride = .now }

    /// True until the session ended (meeting over, removed, left, connection closed).
    public var isRunning: Bool { running }

    /// The fatal relay error (or end-to-end removal) that ended the session, if any.
    public var endedBy: ErrorCode? { session.endedBy }
}

// MARK: - Inspection (tests, diagnostics)

extension Participant {
    /// What opening a captured frame would do with this participant's current keys, on a
    /// copy of the key ring (nothing is counted or buffered).
    public func openAttempt(_ frame: FrameMessage) -> ReceiveResult {
        var copy = session.e2e.ring
        return copy.open(header: frame.header, payload: frame.payload, now: now)
    }

    /// Seals a frame as this participant would send it, without sending it (tests that
    /// play a malicious relay, which would hold such a frame in flight).
    func makeFrame(kind: FrameKind, plaintext: [UInt8], to recipient: UInt16? = nil) throws -> FrameMessage {
        try session.seal(kind, to: recipient.map { ParticipantIndex($0) } ?? .everyone, plaintext: plaintext, now: now, epoch: .newest)
    }
}

// MARK: - Recording (3.8)

extension Participant {
    /// Milliseconds since the recording started (the records' `t_ms`).
    var recordingMillis: UInt32 {
        let d = ContinuousClock.now - recordingStartedAt
        return UInt32(clamping: d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Starts the recording asked for once keys are in place; a refusal (no right) is
    /// reported once, and the attempt repeats when the verified roster gives the right.
    func startRecordingIfWanted(now nowMs: UInt64) async {
        guard running, recordingRequested, !session.isRecording, session.hasKeys else { return }
        guard session.mayRecord || !recordingRefusalReported else { return }
        let retain = Self.unixSeconds() + UInt64(max(0, options.retainDays)) * 86_400
        let actions = session.startRecording(retainUntil: retain, now: nowMs)
        recordingRefused = !session.isRecording
        if recordingRefused { recordingRefusalReported = true }
        await carryOut(actions)
    }

    func recordingAction(_ action: RecordingAction) {
        switch action {
        case let .start(id, retainUntil):
            let path: String
            if let p = options.recordPath, !recordingsWritten.contains(p) {
                path = p
            } else {
                let dir = options.recordDirectory ?? "."
                path = "\(dir)/conclave-\(Self.fileStamp())-\(Hex.encode(id.prefix(4))).crec"
            }
            do {
                var recipients = RecordingWriter.Recipients(
                    identities: [identity.publicIdentity] + options.recordingRecipients,
                    passphrase: options.recordingPassphrase, passphraseLimits: options.recordingPassphraseLimits)
                recipients.identities = Array(recipients.identities.prefix(RecordingFormat.maximumKeySlots - (options.recordingPassphrase == nil ? 0 : 1)))
                recordingStartedAt = ContinuousClock.now
                recordingFile = try RecordingWriter(
                    path: path, recordingID: id, roomID: roomID, recorder: session.index,
                    recorderIdentity: identity.publicIdentity, recipients: recipients,
                    createdAt: Self.unixSeconds(), retainUntil: retainUntil, startedAtMillis: Self.unixMillis())
                output.emit("recording_file", [("path", .string(path))], human: "recording to \(path) (mode 0600, encrypted)")
            } catch {
                recordingFailed(error)
            }
        case let .member(index, identity, name, consent):
            guard let file = recordingFile else { return }
            do { try file.addMember(index: index, identity: identity, displayName: name, consent: consent, atMillis: recordingMillis) } catch {
                recordingFailed(error)
            }
        case .stop:
            finishRecordingFile()
        }
    }

    func recordAudio(_ sender: UInt16, packet: [UInt8]) {
        guard let file = recordingFile, let opus = try? AudioPacket.decode(packet).opus else { return }
        do { try file.audio(index: sender, atMillis: recordingMillis, opus: Array(opus)) } catch { recordingFailed(error) }
    }

    func finishRecordingFile() {
        guard let file = recordingFile else { return }
        recordingFile = nil
        do {
            try file.finish(atMillis: recordingMillis, stoppedAtMillis: Self.unixMillis())
            recordingsWritten.append(file.path)
            output.emit(
                "recording_saved", [("path", .string(file.path)), ("bytes", .int(file.bytesWritten)), ("members", .int(file.members.count))],
                human: "recording saved: \(file.path) (\(file.bytesWritten) bytes, \(file.members.count) members recorded)")
        } catch {
            output.emit("error", [("code", .string("recording_failed")), ("message", .string("\(error)"))], human: "recording failed: \(error)")
        }
    }

    /// The file cannot be written: the recording stops (with a stop notice) at the next step.
    func recordingFailed(_ error: any Error) {
        output.emit("error", [("code", .string("recording_failed")), ("message", .string("\(error)"))], human: "recording failed: \(error)")
        recordingFile = nil
        recordingRequested = false
        let actions = session.stopRecording(now: now, reason: "the recording file could not be written")
        let begun = beginCarryOut(
            actions.filter {
                if case .recording = $0 { return false }; return true
            })
        Task { await self.finishCarryOut(begun) }
    }

    static func unixSeconds() -> UInt64 { UInt64(max(0, time(nil))) }

    static func unixMillis() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(max(0, ts.tv_sec)) * 1000 + UInt64(max(0, ts.tv_nsec)) / 1_000_000
    }

    /// `YYYYMMDD-HHMMSS` (UTC).
    static func fileStamp() -> String {
        var t = time(nil)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))-\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))"
    }
}
