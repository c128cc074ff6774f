import ConclaveCrypto
@testable import ConclaveProtocol

/// One participant in the tests: the production ``E2ESession`` (ring, sender and key
/// schedule, and the glue between them) plus the bookkeeping the tests read.
final class E2EPeer {
    let index: UInt16
    let identity: PrivateIdentity
    let name: String
    /// The join nonce of this peer's knock (4.2).
    let joinNonce = SecureRandom.bytes(count: Knock.joinNonceLength)
    var session: E2ESession
    var ring: ReceiverKeyRing {
        get { session.ring }
        set { session.ring = newValue }
    }
    var sender: SenderKeyState {
        get { session.sender }
        set { session.sender = newValue }
    }
    var member: MemberKeySchedule? {
        get { session.member }
        set { session.member = newValue }
    }
    var leader: LeaderKeySchedule? {
        get { session.leader }
        set { session.leader = newValue }
    }
    /// Opened frames other than control frames, in delivery order.
    var received: [ReceivedFrame] = []
    var rejections: [KeyRejectionReason] = []
    var memberActions: [MemberAction] = []
    /// The first epoch this peer installed (frames of older epochs are not for it).
    var firstEpoch: UInt64?
    /// Senders a verified `ROSTER` removed (their later frames are dropped).
    var revokedSenders = Set<UInt16>()
    /// The members of the last full install.
    var lastTable: Set<UInt16>?
    /// Every epoch secret this peer installed (for tests that recompute its keys).
    var epochSecrets: [UInt64: SecretKey] = [:]

    init(roomID: RoomID, index: UInt16, identity: PrivateIdentity = .generate(), name: String) {
        self.index = index
        self.identity = identity
        self.name = name
        self.session = E2ESession(roomID: roomID, me: index, identity: identity)
    }

    var entry: SignedRoster.Entry { SignedRoster.Entry(index: index, identity: identity.publicIdentity, displayName: name, joinNonce: joinNonce) }

    var currentSecurityCode: SecurityCode? { session.securityCode }

    /// Delivers a `FRAME` of kind 1–4.
    @discardableResult
    func receive(header: FrameHeader, payload: [UInt8], now: UInt64) -> ReceiveResult {
        let (result, outputs) = session.receive(header: header, payload: payload, now: now)
        if case let .opened(frame) = result, frame.header.kind != .control { received.append(frame) }
        record(outputs)
        return result
    }

    func receiveKeyPackage(_ payload: [UInt8], from sender: UInt16, now: UInt64) {
        record(session.receiveKeys(payload, from: sender, now: now))
    }

    /// Applies what the member schedule returned to a direct call.
    func apply(_ actions: [MemberAction], now: UInt64) {
        record(session.apply(actions, now: now))
    }

    /// Installs as the leader does (outside ``E2ESession/perform(_:now:)``).
    func applyInstall(_ install: EpochInstall, now: UInt64) {
        record((try? session.perform([.install(install)], now: now)) ?? [])
    }

    func record(_ outputs: [E2ESession.Output]) {
        for output in outputs {
            switch output {
            case let .opened(frame): if frame.header.kind != .control { received.append(frame) }
            case let .member(action):
                memberActions.append(action)
                if case let .membersRemoved(gone) = action { revokedSenders.formUnion(gone) }
            case let .rejected(reason): rejections.append(reason)
            case let .installed(install):
                if firstEpoch == nil { firstEpoch = install.epoch }
                epochSecrets[install.epoch] = install.secret
                // A full install drops whoever its table no longer lists (3.3): the
                // leader's own removals take effect here.
                if install.mode == .full {
                    let now = Set(install.table.members.map(\.index))
                    if let last = lastTable { revokedSenders.formUnion(last.subtracting(now)) }
                    revokedSenders.subtract(now)
                    lastTable = now
                }
            case .send: break
            }
        }
    }
}

/// A room and a relay that delivers messages after a per-message delay (0 by default).
/// The leader's control frames and key packages to one recipient keep their order, as
/// the relay forwards one sender's frames in order (3.2).
final class E2ERoom {
    enum Message {
        case frame(FrameHeader, [UInt8])
        case keyPackage(from: UInt16, [UInt8])
    }

    struct Pending {
        let at: UInt64
        let seq: Int
        let to: UInt16
        let message: Message
        /// The index in `sent` of a media frame.
        var mediaID: Int? = nil
    }

    /// A frame that reached a connected peer: its KID's epoch and, for media, its index in `sent`.
    struct Delivery {
        let to: UInt16
        let epoch: UInt64
        let mediaID: Int?
        /// The recipient had already verified a `ROSTER` without the sender (3.6): the
        /// frame is dropped as `removedMember`, by design.
        var afterRemoval = false
    }

    /// A media (or chat) frame as sent, for the bookkeeping of the tests.
    struct SentFrame {
        let header: FrameHeader
        let payload: [UInt8]
        let plaintext: [UInt8]
        let epoch: UInt64
        let at: UInt64
    }

    let roomID: RoomID
    var now: UInt64 = 0
    var peers: [UInt16: E2EPeer] = [:]
    var leaderIndex: UInt16 = 1
    private var queue: [Pending] = []
    private var queueSorted = true
    private var seq = 0
    private var orderedUntil: [UInt16: UInt64] = [:]
    /// Delay of media frames (per delivery) and of the leader's control channel (per recipient).
    var mediaDelay: (UInt16, UInt16) -> UInt64 = { _, _ in 0 }
    var controlDelay: (UInt16) -> UInt64 = { _ in 0 }
    var sent: [SentFrame] = []
    /// Every frame (kinds 1–4) delivered to a connected peer, in delivery order.
    var delivered: [Delivery] = []

    init(roomID: RoomID = RoomID(bytes: (0..<16).map { UInt8(truncatingIfNeeded: $0 * 17 + 3) })!) {
        self.roomID = roomID
    }

    var leader: E2EPeer { peers[leaderIndex]! }
    /// Every key package the leader sent, as a relay would have seen (and kept) it.
    var keyPackagesSent: [(to: UInt16, payload: [UInt8])] = []

    // MARK: Membership

    @discardableResult
    func createLeader(index: UInt16 = 1, name: String = "Host") throws -> E2EPeer {
        let peer = E2EPeer(roomID: roomID, index: index, name: name)
        peer.leader = LeaderKeySchedule(roomID: roomID, me: index, identity: peer.identity, displayName: name, joinNonce: peer.joinNonce)
        peers[index] = peer
        leaderIndex = index
        try perform(peer.leader!.start(now: now), by: peer)
        return peer
    }

    /// The relay admits a new participant: it connects now; the leader reacts at once
    /// unless `leaderReacts` is false (then call ``leaderHandles(admit:remove:)``).
    @discardableResult
    func join(index: UInt16, name: String, leaderReacts: Bool = true) throws -> E2EPeer {
        let peer = E2EPeer(roomID: roomID, index: index, name: name)
        peer.member = MemberKeySchedule(
            roomID: roomID, me: index, identity: peer.identity, joinNonce: peer.joinNonce, leaderIndex: leaderIndex,
            leaderIdentity: leader.identity.publicIdentity)
        peers[index] = peer
        if leaderReacts { try leaderHandles(admit: [peer], remove: []) }
        return peer
    }

    /// The participant disconnects now; the leader reacts at once unless told otherwise.
    @discardableResult
    func leave(index: UInt16, leaderReacts: Bool = true) throws -> E2EPeer {
        let peer = peers.removeValue(forKey: index)!
        if leaderReacts { try leaderHandles(admit: [], remove: [index]) }
        return peer
    }

    func leaderHandles(admit: [E2EPeer], remove: [UInt16]) throws {
        let actions = try leader.leader!.changeMembership(admit: admit.map(\.entry), remove: remove, now: now)
        try perform(actions, by: leader)
    }

    // MARK: Sending

    func perform(_ actions: [LeaderAction], by peer: E2EPeer) throws {
        let outputs = try peer.session.perform(actions, now: now)
        peer.record(outputs)
        for case let .send(frame) in outputs {
            switch frame.kind {
            case .keys:
                keyPackagesSent.append((frame.recipient.rawValue, frame.payload))
                enqueue(to: frame.recipient.rawValue, .keyPackage(from: peer.index, frame.payload), ordered: true)
            default:
                try checkFits(frame.payload)
                let header = try FrameHeader(kind: frame.kind, sender: ParticipantIndex(peer.index), recipient: frame.recipient)
                let targets = frame.recipient == .everyone ? peers.keys.filter { $0 != peer.index } : [frame.recipient.rawValue]
                for to in targets { enqueue(to: to, .frame(header, frame.payload), ordered: true) }
            }
        }
    }

    /// Every control frame payload sealed, in parts or whole.
    var controlFramesSealed = 0

    struct FrameTooLong: Error { let length: Int }
    /// The relay refuses a control payload over 16 384 bytes (2.2): so does the harness.
    private func checkFits(_ payload: [UInt8]) throws {
        controlFramesSealed += 1
        guard payload.count <= FrameKind.control.payloadLimit else { throw FrameTooLong(length: payload.count) }
    }

    /// Seals and broadcasts a media frame; returns its index in `sent`.
    @discardableResult
    func send(from index: UInt16, kind: FrameKind = .audio, to recipient: ParticipantIndex = .everyone, plaintext: [UInt8]) throws -> Int {
        let peer = peers[index]!
        let payload = try peer.sender.seal(kind: kind, recipient: recipient, plaintext: plaintext, now: now)
        let header = try FrameHeader(kind: kind, sender: ParticipantIndex(index), recipient: recipient)
        let kid = try SFrameHeader.decode(payload).header.keyID
        sent.append(SentFrame(header: header, payload: payload, plaintext: plaintext, epoch: EpochKeys.split(keyID: kid).epoch, at: now))
        let id = sent.count - 1
        let targets = recipient == .everyone ? peers.keys.filter { $0 != index } : [recipient.rawValue]
        for to in targets {
            let at = now + mediaDelay(index, to)
            seq += 1
            queue.append(Pending(at: at, seq: seq, to: to, message: .frame(header, payload), mediaID: id))
            queueSorted = false
        }
        return id
    }

    private func enqueue(to: UInt16, _ message: Message, ordered: Bool) {
        var at = now + controlDelay(to)
        if ordered {
            at = max(at, orderedUntil[to] ?? 0)
            orderedUntil[to] = at
        }
        seq += 1
        queue.append(Pending(at: at, seq: seq, to: to, message: message))
        queueSorted = false
    }

    // MARK: Time

    /// Delivers everything due up to `time` (in order of due time, then sending order).
    func run(until time: UInt64) {
        while true {
            // Latest last, so the next due message is popped from the end; re-sorted only
            // after something was queued.
            if !queueSorted {
                queue.sort { ($0.at, $0.seq) > ($1.at, $1.seq) }
                queueSorted = true
            }
            guard let next = queue.last, next.at <= time else { break }
            let item = queue.removeLast()
            now = max(now, item.at)
            guard let peer = peers[item.to] else { continue }  // left meanwhile
            switch item.message {
            case let .frame(header, payload):
                let kid = (try? SFrameHeader.decode(payload).header.keyID) ?? 0
                delivered.append(
                    Delivery(
                        to: item.to, epoch: EpochKeys.split(keyID: kid).epoch, mediaID: item.mediaID,
                        afterRemoval: peer.revokedSenders.contains(header.sender.rawValue)))
                peer.receive(header: header, payload: payload, now: now)
            case let .keyPackage(from, payload): peer.receiveKeyPackage(payload, from: from, now: now)
            }
        }
        now = max(now, time)
    }

    /// Delivers everything queued.
    func flush() { run(until: queue.map(\.at).max() ?? now) }

    /// A leader (#1) with Ann (#2) and Bob (#3), everything delivered, at 1 s.
    static func withAnnAndBob() throws -> (room: E2ERoom, ann: E2EPeer, bob: E2EPeer) {
        let room = E2ERoom()
        try room.createLeader()
        let a = try room.join(index: 2, name: "Ann")
        let b = try room.join(index: 3, name: "Bob")
        room.flush()
        room.run(until: 1_000)
        return (room, a, b)
    }
}

/// A deterministic generator of epoch secrets for tests that need reproducible leaders.
final class CountingSecrets: @unchecked Sendable {
    private var n: UInt64 = 0
    func next() -> SecretKey {
        n += 1
        return SecretKey(copying: SHA2.sha256(Array("test epoch secret \(n)".utf8)))
    }
}
