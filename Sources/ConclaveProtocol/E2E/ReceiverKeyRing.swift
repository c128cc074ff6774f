import ConclaveCrypto

// MARK: - Outcomes

/// Why a received frame was dropped (sections 2.8 and 3.7). Counted locally, never sent
/// to the relay.
public enum ReceiveDrop: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// SFrame header truncated, payload shorter than header + tag, a KID the frame may not
    /// use (an epoch KID on addressed chat, a pairwise KID elsewhere), or the tag does not
    /// verify: tampered bytes, relabelled metadata, or a key we do not share.
    case decryptFailed
    /// The counter was already accepted under this key.
    case replayed
    /// The counter is 1 024 or more below the highest accepted under this key.
    case tooOld
    /// The KID names an epoch older than the retained ones: erased after the grace period,
    /// or from before this member's first epoch.
    case unknownEpoch
    /// A buffered future-epoch frame expired (1 s) or was pushed out (64 per sender).
    case noKey
    /// The KID's sender bits differ from the `FRAME` sender.
    case senderMismatch
    /// The sender is not in the verified roster of the frame's epoch: a frame no member
    /// should have sealed (a forgery, or a relay that misroutes).
    case notMember
    /// The sender was a member of the frame's epoch until a verified `ROSTER` removed it
    /// (3.6 "Removal is immediate"): its frames still in flight when it left or was
    /// removed. Normal churn, counted apart from ``notMember``.
    case removedMember

    public var description: String {
        switch self {
        case .decryptFailed: return "decrypt_failed"
        case .replayed: return "duplicate"
        case .tooOld: return "too_old"
        case .unknownEpoch: return "unknown_epoch"
        case .noKey: return "no_key"
        case .senderMismatch: return "sender_mismatch"
        case .notMember: return "not_member"
        case .removedMember: return "removed_member"
        }
    }
}

/// The result of ``ReceiverKeyRing/open(header:payload:into:now:)`` (no allocation).
public enum ReceiveOutcome: Sendable, Hashable {
    /// Authenticated; the plaintext is `output[0 ..< plaintextLength]`. `epoch` is 0 for a
    /// pairwise (private chat) key.
    case opened(sender: UInt16, epoch: UInt64, counter: UInt64, plaintextLength: Int)
    /// A future epoch's frame (or one waiting for a new member's roster), kept for up to
    /// 1 s; ``ReceiverKeyRing/install(epoch:secret:members:provisional:now:)`` returns it once it opens.
    case buffered
    case dropped(ReceiveDrop)
}

/// A frame that opened, with its plaintext copied out.
public struct ReceivedFrame: Sendable, Hashable {
    public let header: FrameHeader
    /// 0 for a pairwise key.
    public let epoch: UInt64
    public let counter: UInt64
    public let plaintext: [UInt8]

    public var sender: UInt16 { header.sender.rawValue }
}

/// The result of the array convenience ``ReceiverKeyRing/open(header:payload:now:)``.
public enum ReceiveResult: Sendable, Hashable {
    case opened(ReceivedFrame)
    case buffered
    case dropped(ReceiveDrop)
}

/// What a receiver counted. Every frame passed to `open` is counted exactly once as
/// `opened`, `buffered` or one drop; a buffered frame is later counted once more, as
/// `opened` or a drop (usually `noKey`), when it leaves the buffer.
public struct ReceiveCounters: Sendable, Hashable {
    public var opened = 0
    public var buffered = 0
    /// Buffered frames that opened on a later install or confirmation (also in `opened`).
    public var openedFromBuffer = 0
    public var decryptFailed = 0
    public var replayed = 0
    public var tooOld = 0
    public var unknownEpoch = 0
    public var noKey = 0
    public var senderMismatch = 0
    public var notMember = 0
    public var removedMember = 0

    public init() {}

    public subscript(drop: ReceiveDrop) -> Int {
        get {
            switch drop {
            case .decryptFailed: decryptFailed
            case .replayed: replayed
            case .tooOld: tooOld
            case .unknownEpoch: unknownEpoch
            case .noKey: noKey
            case .senderMismatch: senderMismatch
            case .notMember: notMember
            case .removedMember: removedMember
            }
        }
        set {
            switch drop {
            case .decryptFailed: decryptFailed = newValue
            case .replayed: replayed = newValue
            case .tooOld: tooOld = newValue
            case .unknownEpoch: unknownEpoch = newValue
            case .noKey: noKey = newValue
            case .senderMismatch: senderMismatch = newValue
            case .notMember: notMember = newValue
            case .removedMember: removedMember = newValue
            }
        }
    }

    /// Sum of every drop counter.
    public var dropped: Int { ReceiveDrop.allCases.reduce(0) { $0 + self[$1] } }
}

// MARK: - Ring

/// A participant's receive keys (sections 2.8, 3.3 and 3.7): the current epoch and,
/// during the grace period, the previous one, with one lazily derived ``SFrameKey`` and
/// one ``ReplayWindow`` per (epoch, sender); pairwise keys for private chat; and a
/// bounded buffer for frames of epochs not installed yet.
///
/// A value-type state machine: time comes in as milliseconds (`now`, any monotonic
/// origin), nothing here reads a clock or does I/O.
///
/// **Allocation.** Opening a frame whose key is already cached allocates nothing: the
/// SFrame header is parsed in place, the metadata is built in a stack buffer, the key
/// and window are updated in place, and the plaintext goes into the caller's buffer. The
/// first frame of a sender in an epoch derives and caches its key (HKDF: allocates);
/// buffering a frame copies it; the `[UInt8]` convenience allocates its result.
///
/// **Erasure.** Installing epoch `e'` makes the current epoch a previous one until
/// `now + 5 000` ms; then (checked on every call) that epoch's secret, SFrame keys,
/// cached subkeys and replay windows are released, which wipes them (``SecretBytes``).
/// A burst of epoch changes (a member joining and leaving several times within the
/// grace) keeps each replaced epoch for its own grace, at most
/// ``maximumPreviousEpochs`` of them: installing one more erases the oldest at once.
public struct ReceiverKeyRing: Sendable {
    /// How long a replaced epoch is kept after the install that replaced it (3.3).
    public static let previousEpochRetention: UInt64 = 5_000
    /// Replaced epochs kept at once (3.3): enough for a burst of changes within the grace.
    public static let maximumPreviousEpochs = 8
    /// How long a future-epoch frame is kept (3.3).
    public static let bufferLifetime: UInt64 = 1_000
    /// Buffered frames per sender; a 65th pushes out that sender's oldest (3.3).
    public static let bufferedFramesPerSender = 64
    /// Buffered frames in all, whatever the senders (an implementation limit: the relay
    /// chooses `FRAME` senders, so per-sender limits alone do not bound memory).
    public static let bufferedFramesTotal = 8_192
    /// Buffered payload bytes in all (implementation limit).
    public static let bufferedBytesTotal = 8 << 20

    public let roomID: RoomID
    /// Our own index: addressed chat must name it.
    public let me: UInt16
    private let metadata: FrameMetadata
    /// Needed only for private chat (pairwise keys, 2.7).
    private let identity: PrivateIdentity?

    private var current: ReceiveEpoch?
    /// Replaced epochs still in their grace, newest first, and when each is erased
    /// (so the deadlines decrease along the array).
    private var previous: [ReceiveEpoch] = []
    private var previousDeadlines: [UInt64] = []
    private var buffer = FutureFrameBuffer()
    private var pairwiseSlots: [SenderSlot] = []
    /// The latest verified roster's members, for their join nonces (private chat, 2.7).
    private var joinNonces = MemberTable([])
    private var pairwiseIndex: [PairwiseID: Int] = [:]

    public private(set) var counters = ReceiveCounters()

    /// `identity` enables private chat: without it, pairwise frames are `decryptFailed`.
    public init(roomID: RoomID, me: UInt16, identity: PrivateIdentity? = nil) {
        self.roomID = roomID
        self.me = me
        self.metadata = FrameMetadata(roomID: roomID)
        self.identity = identity
    }

    // MARK: State

    /// The current epoch, if any.
    public var currentEpoch: UInt64? { current?.epoch }
    /// The newest replaced epoch while it is retained.
    public var previousEpoch: UInt64? { previous.first?.epoch }
    /// When the newest replaced epoch will be erased, while it is retained.
    public var previousEpochErasedAt: UInt64? { previousDeadlines.first }
    /// Every replaced epoch still retained, newest first.
    public var retainedPreviousEpochs: [UInt64] { previous.map(\.epoch) }
    /// True while the current epoch waits for its roster (a new member, 3.2).
    public var currentIsProvisional: Bool { current?.provisional ?? false }
    /// Frames waiting in the future-epoch buffer.
    public var bufferedFrameCount: Int { buffer.frames.count }

    /// The SFrame keys cached for `epoch` (tests use it to prove erasure).
    func cachedKeys(epoch: UInt64) -> [SFrameKey] {
        ([current].compactMap { $0 } + previous).filter { $0.epoch == epoch }.flatMap { $0.slots.map(\.key) }
    }

    // MARK: Installing

    /// Makes `epoch` current (it must be newer than the current one). The current epoch
    /// becomes `previous` until `now + 5 000` ms; an older previous epoch is erased now.
    /// `members` is the epoch's verified roster (index and identity): frames from anyone
    /// else are `notMember`. With `provisional` (a new member before its addressed
    /// `ROSTER`, 3.2), `members` is just the leader and frames from others wait in the
    /// buffer until ``confirm(epoch:members:now:)``.
    ///
    /// Returns the buffered frames that now open, in arrival order, for the caller to
    /// deliver: nothing garbles across an epoch change.
    @discardableResult
    public mutating func install(
        epoch: UInt64, secret: SecretKey, members: [RosterMember], provisional: Bool = false,
        now: UInt64
    ) -> [ReceivedFrame] {
        install(epoch: epoch, secret: secret, table: MemberTable(members), provisional: provisional, now: now)
    }

    /// ``install(epoch:secret:members:provisional:now:)`` with a roster's member table.
    @discardableResult
    public mutating func install(
        epoch: UInt64, secret: SecretKey, table: MemberTable, provisional: Bool = false,
        removing: Set<UInt16> = [], now: UInt64
    ) -> [ReceivedFrame] {
        precondition(epoch >= 1 && epoch <= EpochKeys.maximumEpoch, "epoch out of range")
        precondition(secret.count == 32, "epoch secrets are 32 bytes")
        advance(to: now)
        if var old = current {
            precondition(epoch > old.epoch, "epochs only move forward")
            // Members the new epoch leaves out (`removing`) were removed: their frames
            // stop opening now, under the old epoch's grace too (3.6 "Removal is
            // immediate"). Members got this already from the removal roster; the leader,
            // whose own decision it is, gets it here.
            for r in removing {
                old.members.revoke(r)
                for i in previous.indices { previous[i].members.revoke(r) }
            }
            previous.insert(old, at: 0)
            previousDeadlines.insert(now &+ Self.previousEpochRetention, at: 0)
            if previous.count > Self.maximumPreviousEpochs {  // the oldest is released (wiped) here
                previous.removeLast()
                previousDeadlines.removeLast()
            }
        }
        current = ReceiveEpoch(epoch: epoch, secret: secret, members: table, provisional: provisional)
        if !provisional { joinNonces = table }
        return releaseBuffered(now: now)
    }

    /// Confirms a provisional current epoch with its verified roster (a new member's
    /// addressed `ROSTER`, 3.2) and returns the buffered frames that now open.
    @discardableResult
    public mutating func confirm(epoch: UInt64, members: [RosterMember], now: UInt64) -> [ReceivedFrame] {
        confirm(epoch: epoch, table: MemberTable(members), now: now)
    }

    @discardableResult
    public mutating func confirm(epoch: UInt64, table: MemberTable, now: UInt64) -> [ReceivedFrame] {
        precondition(current?.epoch == epoch, "confirming an epoch that is not current")
        advance(to: now)
        current!.members = table
        current!.provisional = false
        joinNonces = table
        return releaseBuffered(now: now)
    }

    /// Stops accepting frames from `senders` under every epoch held (current and previous):
    /// they were removed by a verified `ROSTER` whose fresh epoch may not be installed yet
    /// (3.6 "Removal is immediate"). Their later frames are `removedMember`; their buffered ones
    /// are dropped when they expire.
    public mutating func revoke(_ senders: Set<UInt16>) {
        guard !senders.isEmpty else { return }
        for s in senders {
            current?.members.revoke(s)
            for i in previous.indices { previous[i].members.revoke(s) }
            joinNonces.revoke(s)
        }
    }

    /// Erases the previous epoch once its grace period is over and drops expired buffered
    /// frames (`noKey`). Every other entry point calls it first; call it on a timer too so
    /// that keys are erased on time when no frames arrive.
    public mutating func advance(to now: UInt64) {
        while let oldest = previousDeadlines.last, now >= oldest {
            previous.removeLast()
            previousDeadlines.removeLast()
        }
        counters.noKey += buffer.expire(now: now, lifetime: Self.bufferLifetime)
    }

    // MARK: Opening

    /// Authenticates and decrypts the payload of a `FRAME` of kind 1–4 into `output`
    /// (which must hold at least `payload.count` bytes), following section 2.8. Builds
    /// the metadata from the room and `header` as received. On any outcome other than
    /// `.opened` the output holds no plaintext. See the type's note on allocation.
    public mutating func open(
        header: FrameHeader, payload: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer, now: UInt64
    ) -> ReceiveOutcome {
        precondition(output.count >= payload.count, "output must hold the payload's length")
        advance(to: now)
        return process(header: header, payload: payload, into: output, arrival: now, firstSeen: true)
    }

    /// ``open(header:payload:into:now:)`` with arrays (allocates the plaintext).
    public mutating func open(header: FrameHeader, payload: [UInt8], now: UInt64) -> ReceiveResult {
        var out = [UInt8](repeating: 0, count: payload.count)
        let outcome = payload.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { o in open(header: header, payload: p, into: o, now: now) }
        }
        switch outcome {
        case let .opened(_, epoch, counter, length):
            return .opened(ReceivedFrame(header: header, epoch: epoch, counter: counter, plaintext: Array(out[0..<length])))
        case .buffered: return .buffered
        case let .dropped(d): return .dropped(d)
        }
    }

    private mutating func process(
        header: FrameHeader, payload: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
        arrival: UInt64, firstSeen: Bool
    ) -> ReceiveOutcome {
        guard header.kind != .keys else { return drop(.decryptFailed) }
        // 1. SFrame header and minimum length.
        guard let (sframe, headerLength) = try? SFrameHeader.decode(payload),
            payload.count >= headerLength + SFrameCipherSuite.conclaveXChaCha20Poly1305SHA256.tagLength
        else { return drop(.decryptFailed) }
        // 2. Key selection.
        let (epoch, kidSender) = EpochKeys.split(keyID: sframe.keyID)
        if epoch == 0 {
            return openPairwise(header: header, kidSender: kidSender, counter: sframe.counter, payload: payload, into: output)
        }
        if header.kind == .chat && !header.isBroadcast { return drop(.decryptFailed) }
        guard kidSender == header.sender.rawValue else { return drop(.senderMismatch) }
        // Compare epoch numbers only: binding a copy of an epoch's state here would keep its
        // dictionaries shared and make the in-place update below copy them.
        let which: Which
        guard let currentEpoch = current?.epoch else {
            return bufferFrame(header: header, payload: payload, arrival: arrival, firstSeen: firstSeen)
        }
        if epoch == currentEpoch {
            which = .current
        } else if let i = previous.firstIndex(where: { $0.epoch == epoch }) {
            which = .previous(i)
        } else if epoch < currentEpoch {
            return drop(.unknownEpoch)
        } else {
            return bufferFrame(header: header, payload: payload, arrival: arrival, firstSeen: firstSeen)
        }
        // 3–5. Membership, replay window, decryption, accept.
        let roomID = self.roomID, metadata = self.metadata
        let status = withEpoch(which) { slot in
            slot.open(
                sender: kidSender, counter: sframe.counter, header: header, payload: payload, into: output,
                roomID: roomID, metadata: metadata)
        }
        switch status {
        case let .opened(length):
            counters.opened += 1
            if !firstSeen { counters.openedFromBuffer += 1 }
            return .opened(sender: kidSender, epoch: epoch, counter: sframe.counter, plaintextLength: length)
        case .awaitingRoster:
            return bufferFrame(header: header, payload: payload, arrival: arrival, firstSeen: firstSeen)
        case let .dropped(d):
            return drop(d)
        }
    }

    private mutating func openPairwise(
        header: FrameHeader, kidSender: UInt16, counter: UInt64, payload: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) -> ReceiveOutcome {
        // Only an addressed chat frame to us may use a pairwise key.
        guard header.kind == .chat, header.recipient.rawValue == me, let identity else { return drop(.decryptFailed) }
        guard kidSender == header.sender.rawValue else { return drop(.senderMismatch) }
        // The peer's key comes from the latest verified roster only.
        guard let c = current, !c.provisional, let peer = c.members[kidSender] else {
            return drop(current.map { $0.members.wasRevoked(kidSender) } == true ? .removedMember : .notMember)
        }
        guard let peerNonce = joinNonces.member(kidSender)?.joinNonce, !peerNonce.isEmpty,
            let myNonce = joinNonces.member(me)?.joinNonce, !myNonce.isEmpty
        else { return drop(.notMember) }
        let id = PairwiseID(sender: kidSender, peer: peer, peerJoinNonce: peerNonce)
        let i: Int
        if let known = pairwiseIndex[id] {
            i = known
        } else {
            guard
                let key = try? PrivateChatKeys.frameKey(
                    me: identity, peer: peer, roomID: roomID, sender: kidSender, recipient: me,
                    senderJoinNonce: peerNonce, recipientJoinNonce: myNonce)
            else { return drop(.decryptFailed) }
            i = pairwiseSlots.count
            pairwiseSlots.append(SenderSlot(key: key))
            pairwiseIndex[id] = i
        }
        let metadata = self.metadata
        let status = pairwiseSlots[i].open(counter: counter, header: header, payload: payload, into: output, metadata: metadata)
        switch status {
        case let .opened(length):
            counters.opened += 1
            return .opened(sender: kidSender, epoch: 0, counter: counter, plaintextLength: length)
        case .awaitingRoster: return drop(.notMember)
        case let .dropped(d): return drop(d)
        }
    }

    private mutating func drop(_ reason: ReceiveDrop) -> ReceiveOutcome {
        counters[reason] += 1
        return .dropped(reason)
    }

    private mutating func bufferFrame(header: FrameHeader, payload: UnsafeRawBufferPointer, arrival: UInt64, firstSeen: Bool) -> ReceiveOutcome {
        if firstSeen { counters.buffered += 1 }
        counters.noKey += buffer.add(
            FutureFrameBuffer.Frame(header: header, payload: Array(payload), arrival: arrival),
            perSender: Self.bufferedFramesPerSender, totalFrames: Self.bufferedFramesTotal,
            totalBytes: Self.bufferedBytesTotal)
        return .buffered
    }

    private mutating func releaseBuffered(now: UInt64) -> [ReceivedFrame] {
        guard !buffer.frames.isEmpty else { return [] }
        let waiting = buffer.takeAll()
        var released: [ReceivedFrame] = []
        for frame in waiting {
            var out = [UInt8](repeating: 0, count: frame.payload.count)
            let outcome = frame.payload.withUnsafeBytes { p in
                out.withUnsafeMutableBytes { o in
                    process(header: frame.header, payload: p, into: o, arrival: frame.arrival, firstSeen: false)
                }
            }
            if case let .opened(_, epoch, counter, length) = outcome {
                released.append(ReceivedFrame(header: frame.header, epoch: epoch, counter: counter, plaintext: Array(out[0..<length])))
            }
        }
        return released
    }

    private enum Which { case current, previous(Int) }

    private mutating func withEpoch<R>(_ which: Which, _ body: (inout ReceiveEpoch) -> R) -> R {
        switch which {
        case .current: return body(&current!)
        case .previous(let i): return body(&previous[i])
        }
    }
}

// MARK: - Internals

/// One epoch's receive state. Dropping it releases (and so wipes) every key in it.
struct ReceiveEpoch: Sendable {
    let epoch: UInt64
    let secret: SecretKey
    var members: MemberTable
    var provisional: Bool
    /// One slot per sender seen, found through `slotIndex`. An array element is updated in
    /// place; a `Dictionary` value this large would be copied through a heap-allocated
    /// `modify` coroutine frame on every frame.
    var slots: [SenderSlot] = []
    var slotIndex: [UInt16: Int] = [:]

    init(epoch: UInt64, secret: SecretKey, members: MemberTable, provisional: Bool) {
        self.epoch = epoch; self.secret = secret; self.members = members; self.provisional = provisional
    }

    mutating func open(
        sender: UInt16, counter: UInt64, header: FrameHeader, payload: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer, roomID: RoomID, metadata: FrameMetadata
    ) -> SlotStatus {
        // A provisional epoch (a new member before its roster, 3.2) opens only the leader's
        // control frames; everything else waits in the buffer for the confirmation.
        guard members.contains(sender) else {
            return provisional ? .awaitingRoster : .dropped(members.wasRevoked(sender) ? .removedMember : .notMember)
        }
        if provisional && header.kind != .control { return .awaitingRoster }
        let i: Int
        if let known = slotIndex[sender] {
            i = known
        } else {
            guard let key = try? EpochKeys.senderFrameKey(epochSecret: secret, roomID: roomID, epoch: epoch, sender: sender)
            else { return .dropped(.decryptFailed) }
            i = slots.count
            slots.append(SenderSlot(key: key))
            slotIndex[sender] = i
        }
        return slots[i].open(counter: counter, header: header, payload: payload, into: output, metadata: metadata)
    }
}

enum SlotStatus {
    case opened(Int)
    case awaitingRoster
    case dropped(ReceiveDrop)
}

/// A key and its replay window.
struct SenderSlot: Sendable {
    let key: SFrameKey
    var window = ReplayWindow()

    init(key: SFrameKey) { self.key = key }

    /// Replay check before decryption, accept only after it authenticated (3.7).
    mutating func open(
        counter: UInt64, header: FrameHeader, payload: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer, metadata: FrameMetadata
    ) -> SlotStatus {
        switch window.check(counter) {
        case .duplicate: return .dropped(.replayed)
        case .tooOld: return .dropped(.tooOld)
        case .fresh: break
        }
        let length: Int? = withUnsafeTemporaryAllocation(byteCount: FrameMetadata.length, alignment: 1) { md in
            metadata.write(
                kind: header.kind.rawValue, flags: 0, sender: header.sender.rawValue,
                recipient: header.recipient.rawValue, into: md)
            return try? key.open(frame: payload, metadata: UnsafeRawBufferPointer(md), into: output).plaintextLength
        }
        guard let length else { return .dropped(.decryptFailed) }
        window.accept(counter)
        return .opened(length)
    }
}

/// A pairwise key is identified by the peer's index and identity: if a roster ever listed
/// another identity for an index, its key (and window) would be separate.
struct PairwiseID: Hashable, Sendable {
    let sender: UInt16
    let peer: PublicIdentity
    let peerJoinNonce: [UInt8]
}

/// Frames of epochs not installed yet, in arrival order, with the limits of 3.3.
struct FutureFrameBuffer: Sendable {
    struct Frame: Sendable {
        let header: FrameHeader
        let payload: [UInt8]
        let arrival: UInt64
    }

    private(set) var frames: [Frame] = []
    private var perSender: [UInt16: Int] = [:]
    private var bytes = 0

    /// Adds a frame; returns how many frames were pushed out to make room.
    mutating func add(_ frame: Frame, perSender limit: Int, totalFrames: Int, totalBytes: Int) -> Int {
        var dropped = 0
        let sender = frame.header.sender.rawValue
        if perSender[sender, default: 0] >= limit, let oldest = frames.firstIndex(where: { $0.header.sender.rawValue == sender }) {
            remove(at: oldest); dropped += 1
        }
        while !frames.isEmpty, frames.count >= totalFrames || bytes + frame.payload.count > totalBytes {
            remove(at: 0); dropped += 1
        }
        frames.append(frame)
        perSender[sender, default: 0] += 1
        bytes += frame.payload.count
        return dropped
    }

    /// Drops frames that arrived `lifetime` ms or more before `now`; returns how many.
    mutating func expire(now: UInt64, lifetime: UInt64) -> Int {
        var dropped = 0
        while let first = frames.first, now >= first.arrival &+ lifetime {
            remove(at: 0); dropped += 1
        }
        return dropped
    }

    mutating func takeAll() -> [Frame] {
        let all = frames
        frames = []; perSender = [:]; bytes = 0
        return all
    }

    private mutating func remove(at i: Int) {
        let f = frames.remove(at: i)
        let s = f.header.sender.rawValue
        perSender[s]! -= 1
        if perSender[s] == 0 { perSender[s] = nil }
        bytes -= f.payload.count
    }
}
