import Synchronization
import ConclaveProtocol

/// One room's routing state under its own lock, so that frames of different rooms never
/// wait for each other (nor for joins, commands or ticks of other rooms).
///
/// Lock order: ``RelayCore``'s registry lock, then a room's lock, never the reverse. The
/// frame paths (WebSocket and UDP) take only the room's lock; registry operations that
/// change a room (joins, commands, leaves, ticks) take both, in that order. The media
/// sessions of a room's members are guarded by the room's lock too.
final class RoomCell: Sendable {
    let id: RoomID
    let passwordHash: String?
    let state: Mutex<RoomState>

    init(id: RoomID, policy: RoomPolicy, passwordHash: String?) {
        self.id = id
        self.passwordHash = passwordHash
        self.state = Mutex(RoomState(policy: policy))
    }
}

/// What a ``RoomCell`` guards.
struct RoomState {
    var policy: RoomPolicy
    /// Admitted members, rebuilt when membership changes; a frame iterates it in place.
    var recipients: [RelayCore.Recipient] = []
    /// The same members by connection, for addressed frames.
    var byConnection: [ConnectionID: RelayCore.Recipient] = [:]
    /// Set when the room closes: a frame that found the cell a moment before is dropped.
    var isClosed = false
}

/// Media sessions by id, in shards, so that looking up a datagram's session does not
/// serialise the media sockets on one lock.
final class SessionTable: Sendable {
    static let shardCount = 16
    private final class Shard: Sendable { let map = Mutex<[UInt32: MediaSession]>([:]) }
    private let shards: [Shard] = (0..<SessionTable.shardCount).map { _ in Shard() }
    private let total = Atomic<Int>(0)

    @inline(__always) private func shard(_ id: UInt32) -> Shard { shards[Int(id % UInt32(Self.shardCount))] }

    subscript(id: UInt32) -> MediaSession? { shard(id).map.withLock { $0[id] } }

    /// Inserts a session under an id not in use; false when the id is taken.
    func insert(_ session: MediaSession) -> Bool {
        let inserted = shard(session.id).map.withLock { d -> Bool in
            guard d[session.id] == nil else { return false }
            d[session.id] = session
            return true
        }
        if inserted { total.add(1, ordering: .relaxed) }
        return inserted
    }

    func remove(_ id: UInt32) {
        if shard(id).map.withLock({ $0.removeValue(forKey: id) }) != nil { total.subtract(1, ordering: .relaxed) }
    }

    var count: Int { total.load(ordering: .relaxed) }
}
