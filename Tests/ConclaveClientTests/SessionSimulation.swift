import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveClient

/// Issue 9: a meeting of ``ParticipantSession``s in memory, with a relay that forwards as
/// the real one does (knock to the host, ADMITTED and `joined` on admission, frames to
/// their recipients, `removed` and `left`) and that a test can turn hostile at any point:
/// drop, replay, forge or rewrite any relay→client message. Time is a number the test
/// advances; nothing sleeps.
///
/// It records what the invariants need: every frame an honest session sealed (to check
/// that no AEAD (key, nonce) pair repeats), every event and delivered frame per client,
/// and, for each identity the attacker holds, a session of that identity that hears every
/// frame crossing the relay (to check that the attacker never opens anything).
final class SimulatedMeeting {
    struct Client {
        var session: ParticipantSession
        var events: [SessionEvent] = []
        var delivered: [ReceivedFrame] = []
        /// The relay forwards to it (false once it left or the relay removed it).
        var connected = true
        /// Admitted at the relay.
        var admitted = false
    }

    /// A frame an honest session sealed, with the join nonces its key depends on.
    struct Sealed {
        let frame: FrameMessage
        let senderJoinNonce: [UInt8]
        let recipientJoinNonce: [UInt8]?
    }

    let roomID: RoomID
    let invite: Invite
    let hostIdentity: PrivateIdentity
    let hostIndex: UInt16 = 1
    /// Who the relay treats as host (knocks go there; `transfer_host` moves it).
    var relayHost: UInt16 = 1
    var now: UInt64 = 0
    var clients: [UInt16: Client] = [:]
    /// Sessions of identities the attacker holds, each hearing every frame.
    var attacker: [UInt16: Client] = [:]
    var sealed: [Sealed] = []
    /// Key packages the attacker's keys opened.
    var openedKeyPackages = 0
    /// Every frame that crossed the relay, in order (for replays).
    var crossed: [FrameMessage] = []
    /// Every knock the relay carried (for replays).
    var knocks: [(index: UInt16, identity: PublicIdentity, knock: [UInt8])] = []
    /// The next index the relay hands out.
    var nextIndex: UInt16 = 2
    /// The relay's hostile hand: a relay→client message for which this returns true is
    /// not delivered.
    var withhold: (UInt16, RelayMessage) -> Bool = { _, _ in false }
    /// Indices the relay keeps forwarding to although the leader removed them (a relay
    /// that suppresses a removal).
    var keptConnected: Set<UInt16> = []
    private var inbox: [(to: UInt16, message: RelayMessage)] = []
    let configuration: ParticipantSession.Configuration

    init(autoAdmit: Bool = true) throws {
        hostIdentity = PrivateIdentity.generate()
        var id = RoomID.zero
        while id == .zero { id = RoomID(bytes: SecureRandom.bytes(count: MessageLimits.roomIDLength))! }
        roomID = id
        invite = Invite(
            secure: false, host: "127.0.0.1", port: 1, roomID: id, hostIdentity: hostIdentity.publicIdentity,
            secret: Invite.randomSecret(), password: nil)
        var c = ParticipantSession.Configuration(displayName: "host")
        c.autoAdmit = autoAdmit
        configuration = c
        let (host, actions) = try ParticipantSession.host(
            roomID: id, index: hostIndex, identity: hostIdentity, invite: invite,
            waitingRoom: true, configuration: c, now: now)
        clients[hostIndex] = Client(session: host, admitted: true)
        carryOut(actions, from: hostIndex)
        pump()
    }

    var host: ParticipantSession { clients[hostIndex]!.session }

    // MARK: The relay's honest behaviour

    /// A joiner knocks with a knock sealed under the invite; the relay seats it and
    /// forwards the knock to the host. Returns its index.
    @discardableResult
    func join(_ name: String, identity: PrivateIdentity = .generate(), invite given: Invite? = nil) throws -> UInt16 {
        let invite = given ?? self.invite
        let (knock, nonce) = try Knock.seal(
            roomID: roomID, displayName: name, joiner: identity,
            host: invite.hostIdentity.agreementKey, inviteSecret: invite.secret)
        let i = nextIndex
        nextIndex += 1
        clients[i] = Client(
            session: ParticipantSession(
                roomID: roomID, index: i, identity: identity, invite: invite, joinNonce: nonce,
                configuration: .init(displayName: name)))
        knocks.append((i, identity.publicIdentity, knock))
        send(.knock(KnockMessage(index: ParticipantIndex(i), identity: identity.publicIdentity.wireIdentity, knock: knock)), to: relayHost)
        pump()
        return i
    }

    /// The relay's roster as ADMITTED carries it.
    var relayRoster: [RosterEntry] {
        clients.filter { $0.value.admitted && $0.value.connected }.sorted { $0.key < $1.key }.map {
            RosterEntry(
                index: ParticipantIndex($0.key), identity: $0.value.session.identity.publicIdentity.wireIdentity,
                role: $0.key == relayHost ? .host : .participant, state: $0.key == hostIndex ? [] : [.muted])
        }
    }

    /// A command a client sent, as the honest relay carries it out.
    func relayCommand(_ action: CommandAction, from sender: UInt16) {
        switch action {
        case .admit(let i):
            guard var c = clients[i.rawValue], !c.admitted else { return }
            c.admitted = true
            clients[i.rawValue] = c
            send(.admitted(AdmittedMessage(index: i, role: .participant, settings: .privacyDefaults, recording: false, roster: relayRoster)), to: i.rawValue)
            broadcast(
                .event(
                    EventMessage(
                        actor: ParticipantIndex(sender), event: .joined(i, identity: c.session.identity.publicIdentity.wireIdentity, role: .participant))),
                except: i.rawValue)
        case .remove(let i):
            guard !keptConnected.contains(i.rawValue) else { return }  // the relay suppresses it
            clients[i.rawValue]?.connected = false
            broadcast(.event(EventMessage(actor: ParticipantIndex(sender), event: .removed(i))), except: i.rawValue)
        case .transferHost(let i):
            guard sender == relayHost, clients[i.rawValue]?.admitted == true else { return }
            relayHost = i.rawValue
            broadcast(.event(EventMessage(actor: ParticipantIndex(sender), event: .roleChanged(ParticipantIndex(sender), role: .participant))), except: 0)
            broadcast(.event(EventMessage(actor: ParticipantIndex(sender), event: .roleChanged(i, role: .host))), except: 0)
        case .leave:
            clients[sender]?.connected = false
            broadcast(.event(EventMessage(actor: ParticipantIndex(sender), event: .left(ParticipantIndex(sender), reason: .left))), except: sender)
        default:
            break
        }
    }

    func send(_ message: RelayMessage, to i: UInt16) { inbox.append((i, message)) }

    func broadcast(_ message: RelayMessage, except: UInt16) {
        for (i, c) in clients.sorted(by: { $0.key < $1.key }) where i != except && c.admitted && c.connected { send(message, to: i) }
    }

    /// Forwards a frame as the relay does: to its recipient, or to every admitted client
    /// but the sender; the attacker's sessions hear all of it.
    func forward(_ frame: FrameMessage) {
        crossed.append(frame)
        let from = frame.header.sender.rawValue
        if frame.header.recipient == .everyone {
            broadcast(.frame(frame), except: from)
        } else if let c = clients[frame.header.recipient.rawValue], c.admitted, c.connected {
            send(.frame(frame), to: frame.header.recipient.rawValue)
        }
        for i in attacker.keys.sorted() { hearByAttacker(frame, at: i) }
    }

    func hearByAttacker(_ frame: FrameMessage, at i: UInt16) {
        guard var a = attacker[i] else { return }
        // Whatever the leader's checks, a key package sealed to a key the attacker holds
        // opens with that key alone: try it, ignoring every binding an honest client checks.
        if frame.header.kind == .keys, let package = try? KeyPackage(encoded: frame.payload),
            (try? SealedBox.open(package.sealed, recipient: a.session.identity.agreementKey)) != nil
        {
            openedKeyPackages += 1
        }
        let outcome = a.session.receiveFrame(frame, now: now)
        if let f = outcome.opened { a.delivered.append(f) }
        record(outcome.actions, into: &a)
        attacker[i] = a
    }

    // MARK: Running

    /// Delivers queued relay→client messages until none is left (bounded).
    func pump() {
        var steps = 0
        while !inbox.isEmpty, steps < 100_000 {
            steps += 1
            let (to, message) = inbox.removeFirst()
            guard clients[to] != nil, !withhold(to, message) else { continue }
            deliver(message, to: to)
        }
        precondition(inbox.isEmpty, "the simulated meeting did not settle")
    }

    /// Hands one message to a client's session, as its connection would.
    func deliver(_ message: RelayMessage, to i: UInt16) {
        guard var c = clients[i] else { return }
        let actions: [ParticipantSession.Action]
        if case .frame(let f) = message {
            var outcome = c.session.receiveFrame(f, now: now)
            if let frame = outcome.opened { outcome.actions.insert(.deliver(frame), at: 0) }
            actions = outcome.actions
        } else {
            actions = c.session.receive(message, now: now)
        }
        clients[i] = c
        carryOut(actions, from: i)
    }

    /// Carries out a session's actions as the driver does: frames and commands to the relay.
    func carryOut(_ actions: [ParticipantSession.Action], from i: UInt16) {
        guard var c = clients[i] else { return }
        record(actions, into: &c)
        clients[i] = c
        for action in actions {
            guard case .send(let message) = action else { continue }
            switch message {
            case .frame(let f):
                recordSealed(f, by: i)
                forward(f)
            case .command(let cmd):
                relayCommand(cmd.action, from: i)
            default:
                break
            }
        }
    }

    func record(_ actions: [ParticipantSession.Action], into c: inout Client) {
        for action in actions {
            switch action {
            case .event(let e): c.events.append(e)
            case .deliver(let f): c.delivered.append(f)
            default: break
            }
        }
    }

    func recordSealed(_ f: FrameMessage, by i: UInt16) {
        guard f.header.kind != .keys, let s = clients[i]?.session else { return }
        let roster = s.leader?.roster ?? s.member?.roster
        let mine = roster?.entry(for: i)?.joinNonce ?? []
        let theirs = f.header.recipient == .everyone ? nil : roster?.entry(for: f.header.recipient.rawValue)?.joinNonce
        sealed.append(Sealed(frame: f, senderJoinNonce: mine, recipientJoinNonce: theirs))
    }

    /// Advances the clock by `ms` in ticks of at most 100 ms, ticking every session.
    func advance(_ ms: UInt64) {
        var left = ms
        while left > 0 {
            let d = min(left, 100)
            left -= d
            now += d
            for i in clients.keys.sorted() where clients[i]!.connected || keptConnected.contains(i) {
                guard var c = clients[i] else { continue }
                let actions = c.session.tick(now: now)
                clients[i] = c
                carryOut(actions, from: i)
            }
            pump()
        }
    }

    /// A client's own frame (chat, audio), sealed by its session and forwarded.
    func talk(_ i: UInt16, text: String? = nil) throws {
        guard var c = clients[i], c.session.canSeal(now: now) else { return }
        if let text {
            let actions = try c.session.chat(text, to: nil, now: now)
            clients[i] = c
            carryOut(actions, from: i)
        } else {
            let f = try c.session.seal(.audio, to: .everyone, plaintext: [0xF8, 1, 2, 3], now: now)
            clients[i] = c
            recordSealed(f, by: i)
            forward(f)
        }
        pump()
    }

    /// A user command typed at client `i`.
    func command(_ action: CommandAction, at i: UInt16) {
        guard var c = clients[i] else { return }
        let actions = c.session.command(action, now: now)
        clients[i] = c
        carryOut(actions, from: i)
        pump()
    }

    // MARK: The attacker

    /// A session of an identity the attacker holds, seated at `index` as a relay would
    /// seat it (ADMITTED with the real host), hearing every frame from now on.
    func attackerListens(_ identity: PrivateIdentity, at index: UInt16, joinNonce: [UInt8]) {
        var s = ParticipantSession(
            roomID: roomID, index: index, identity: identity, invite: invite, joinNonce: joinNonce,
            configuration: .init(displayName: "mallory"))
        let hostEntry = RosterEntry(index: ParticipantIndex(hostIndex), identity: hostIdentity.publicIdentity.wireIdentity, role: .host)
        let me = RosterEntry(index: ParticipantIndex(index), identity: identity.publicIdentity.wireIdentity, role: .participant, state: [.muted])
        _ = s.receive(
            .admitted(
                AdmittedMessage(
                    index: ParticipantIndex(index), role: .participant, settings: .privacyDefaults, recording: false,
                    roster: [hostEntry, me])), now: now)
        attacker[index] = Client(session: s, admitted: true)
        // It also gets every frame that crossed the relay so far.
        for f in crossed { hearByAttacker(f, at: index) }
    }

    /// Alerts raised by client `i` (codes), from event number `since` on.
    func alerts(_ i: UInt16, since: Int = 0) -> [AlertCode] {
        clients[i]!.events.dropFirst(since).compactMap {
            if case let .alert(code, _) = $0 { return code }; return nil
        }
    }

    // MARK: Invariants

    /// Every (key, nonce) pair sealed so far is distinct. The key of a frame under an
    /// epoch is fixed by its KID (epoch and sender); a pairwise frame's key also by the
    /// recipient and both join nonces (2.7); the nonce by the counter (2.3). So a repeat of
    /// (KID, CTR, recipient scope) is the only way a pair can repeat; it is checked without
    /// identities, so a relay seating another identity at an index is caught too.
    func repeatedNonce() throws -> String? {
        var seen = Set<[UInt8]>()
        for s in sealed {
            let (h, _) = try SFrameHeader.decode(s.frame.payload)
            var key = h.keyID.bigEndianBytes + h.counter.bigEndianBytes
            if EpochKeys.split(keyID: h.keyID).epoch == 0 {
                key += s.frame.header.recipient.rawValue.bigEndianBytes + s.senderJoinNonce + (s.recipientJoinNonce ?? [])
            }
            if !seen.insert(key).inserted { return "KID \(h.keyID) CTR \(h.counter) from #\(s.frame.header.sender.rawValue)" }
        }
        return nil
    }

    /// What the attacker's sessions got: keys or an opened frame is a breach.
    var attackerBreach: String? {
        if openedKeyPackages > 0 { return "the attacker opened \(openedKeyPackages) key packages" }
        for (i, a) in attacker {
            if a.session.hasKeys { return "the attacker's session at #\(i) holds keys" }
            if !a.delivered.isEmpty { return "the attacker's session at #\(i) opened \(a.delivered.count) frames" }
        }
        return nil
    }
}
