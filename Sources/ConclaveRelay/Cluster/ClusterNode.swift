import ConclaveCrypto
import ConclaveProtocol
import ConclaveRedis
import Logging
import NIOCore
import Synchronization
import ConclaveSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Another node as this one last read it from the registry.
struct ClusterPeer: Sendable, Equatable {
    let id: String
    let origin: String
    let participants: Int
    let rooms: Int
    /// Cores the node's process used over its last heartbeat interval.
    let cpu: Double
    let draining: Bool

    /// The registry value: `v1 STATE PARTICIPANTS ROOMS MILLICORES ORIGIN`, space-separated
    /// (the origin has no spaces). README "Running a cluster" lists it.
    var encoded: String {
        "v1 \(draining ? "draining" : "active") \(participants) \(rooms) \(Int((cpu * 1000).rounded())) \(origin)"
    }

    init(id: String, origin: String, participants: Int, rooms: Int, cpu: Double, draining: Bool) {
        self.id = id
        self.origin = origin
        self.participants = participants
        self.rooms = rooms
        self.cpu = cpu
        self.draining = draining
    }

    /// Parses a registry value; nil for anything else (another version, a corrupted entry).
    init?(id: String, encoded: String) {
        let f = encoded.split(separator: " ", omittingEmptySubsequences: false)
        guard f.count == 6, f[0] == "v1", f[1] == "active" || f[1] == "draining",
            let p = Int(f[2]), p >= 0, let r = Int(f[3]), r >= 0, let milli = Int(f[4]), milli >= 0,
            RedirectMessage.parseOrigin(f[5].utf8) != nil
        else { return nil }
        self.init(id: id, origin: String(f[5]), participants: p, rooms: r, cpu: Double(milli) / 1000, draining: f[1] == "draining")
    }
}

/// Where a `CREATE_ROOM` or `JOIN` goes in a cluster.
enum ClusterRoute: Sendable, Equatable {
    /// Handle it here (the room is here, is placed here, or is nowhere: `room_not_found`).
    case local
    /// Answer `REDIRECT elsewhere` to this origin (5.10).
    case redirect(origin: String)
    /// Refuse, with this error.
    case refuse(ErrorCode, String)
}

/// One relay's membership of a cluster that shares a Redis (README "Running a cluster").
///
/// - **Registry.** Every ``Settings/heartbeat`` the node writes `node:<id>` (its origin,
///   load and state) with a TTL of the node timeout, and reads everyone else's. A node that
///   stops writing is gone from every view within the node timeout.
/// - **Placement.** A `CREATE_ROOM` for a room nobody owns is placed on the least-loaded
///   active node: the room is claimed for that node in Redis (`SET NX` in a script, so no
///   two nodes ever own it) and the client is redirected there unless it is this node.
/// - **Ownership.** The owner refreshes its rooms' claims with its heartbeat; a dead
///   owner's claims lapse with its registry entry, and the room can be created again
///   elsewhere by its owner identity only (`owner:<room>` lasts ``Settings/rehomeWindow``).
///
/// Redis holds no name, content, password or plain room id: rooms and identities appear only
/// as HMAC-SHA256 under the cluster key, which Redis never sees.
final class ClusterNode: Sendable {
    struct Settings: Sendable {
        var nodeID: String
        var origin: String
        /// The cluster key: room ids and identities are stored only as HMACs under it.
        var key: [UInt8]
        var nodeTimeout: Duration = .seconds(3)
        var heartbeat: Duration = .seconds(1)
        /// How long the owner identity of a room whose node died is kept, so that only it
        /// can create the room again.
        var rehomeWindow: Duration = .seconds(120)
        var prefix = "conclave:"
    }

    let settings: Settings
    let redis: RedisClient
    private let subscriber: RedisSubscriber
    private let metrics: RelayMetrics
    private let logger: Logger
    private let load: @Sendable () -> (participants: Int, rooms: Int)

    private struct State {
        var peers: [String: ClusterPeer] = [:]
        /// Rooms this node serves: room key → owner-identity hash.
        var owned: [String: String] = [:]
        var draining = false
        var heartbeat: Task<Void, Never>?
        var events: Task<Void, Never>?
        var lastCPU: (wall: ContinuousClock.Instant, cpu: Double)?
        var cpu: Double = 0
        var drainRequested = false
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    init(
        settings: Settings, redis: RedisClientConfiguration, group: EventLoopGroup, metrics: RelayMetrics, logger: Logger,
        load: @escaping @Sendable () -> (participants: Int, rooms: Int)
    ) {
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.load = load
        let m = metrics
        self.redis = RedisClient(configuration: redis, group: group, logger: logger) { event in
            if case .disconnected = event { m.clusterRedisErrors.increment() }
        }
        self.subscriber = RedisSubscriber(configuration: redis, channels: [settings.prefix + "events"], group: group, bufferLimit: 256, logger: logger)
    }

    // MARK: - Keys

    func hash(_ bytes: [UInt8], label: String) -> String {
        let mac = HMAC.authenticate(.sha256, key: settings.key, message: Array(label.utf8) + bytes)
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: mac.prefix(16).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }
    func roomKey(_ room: RoomID) -> String { settings.prefix + "room:" + hash(room.bytes, label: "room") }
    func ownerKey(_ room: RoomID) -> String { settings.prefix + "owner:" + hash(room.bytes, label: "room") }
    func ownerHash(_ identity: Identity) -> String { hash(identity.ed25519Public, label: "identity") }
    func nodeKey(_ id: String) -> String { settings.prefix + "node:" + id }
    var nodesKey: String { settings.prefix + "nodes" }

    // MARK: - Lifecycle

    func start() {
        redis.start()
        subscriber.start()
        state.withLock { s in
            s.heartbeat = Task { await self.heartbeatLoop() }
            s.events = Task { await self.eventLoop() }
        }
    }

    /// Leaves the registry and stops. Rooms still here lapse with their claims.
    func stop() async {
        let (hb, ev) = state.withLock { s in (s.heartbeat, s.events) }
        hb?.cancel()
        _ = try? await redis.pipeline([
            RedisCommand("DEL", [nodeKey(settings.nodeID)]), RedisCommand("SREM", [nodesKey, settings.nodeID]),
            RedisCommand("PUBLISH", [settings.prefix + "events", "left " + settings.nodeID]),
        ])
        await hb?.value
        ev?.cancel()
        releaseDrainWaiters()
        await subscriber.shutdown()
        await ev?.value
        await redis.shutdown()
    }

    var isDraining: Bool { state.withLock { $0.draining } }

    /// Stops new rooms here: the registry says `draining` from the next heartbeat on.
    func beginDraining() async {
        state.withLock { $0.draining = true }
        await heartbeat()
        _ = try? await redis.send(RedisCommand("PUBLISH", [settings.prefix + "events", "draining " + settings.nodeID]))
    }

    /// The nodes this node knows of, itself included once its first heartbeat is done.
    var peers: [ClusterPeer] { state.withLock { Array($0.peers.values) }.sorted { $0.id < $1.id } }

    // MARK: - Rooms

    /// This node now serves `room`, created by `owner`.
    func roomOpened(_ room: RoomID, owner: Identity) {
        let key = roomKey(room), ownerHash = ownerHash(owner)
        let count = state.withLock { s in
            s.owned[key] = ownerHash; return s.owned.count
        }
        metrics.clusterRoomsOwned.record(count)
        Task { _ = try? await self.refresh([(key, ownerKey(room), ownerHash)]) }
    }

    /// `room` closed here. Its claim is released; its owner record too unless the room
    /// may move (`mayMove`: the node is draining, so its members reconnect elsewhere).
    func roomClosed(_ room: RoomID, mayMove: Bool) {
        let key = roomKey(room)
        let count = state.withLock { s in
            s.owned[key] = nil; return s.owned.count
        }
        metrics.clusterRoomsOwned.record(count)
        let owner = ownerKey(room)
        Task {
            _ = try? await self.timed {
                try await self.redis.send(RedisCommand("EVAL", [Self.releaseScript, "2", key, owner, self.settings.nodeID, mayMove ? "keep" : "drop"]))
            }
        }
    }

    /// Where a `JOIN` for a room not served here goes: its owner if that node is alive,
    /// else here (`room_not_found`; the client may retry while the room moves).
    func routeJoin(_ room: RoomID) async -> ClusterRoute {
        do {
            let owner = try await timed { try await self.redis.send(RedisCommand("GET", [self.roomKey(room)])) }.string
            guard let owner, owner != settings.nodeID else { return .local }
            guard let origin = try await liveOrigin(of: owner) else { return .local }
            metrics.clusterRedirects.increment()
            return .redirect(origin: origin)
        } catch {
            metrics.clusterRedisErrors.increment()
            return .refuse(.internal, "the cluster's store is unreachable; try again shortly")
        }
    }

    /// Where a `CREATE_ROOM` for a room not served here goes: to its live owner; else the
    /// room is placed on the least-loaded active node and claimed for it.
    func routeCreate(_ room: RoomID, owner: Identity) async -> ClusterRoute {
        do {
            let target = placement()
            let reply = try await timed {
                try await self.redis.send(
                    RedisCommand(
                        "EVAL",
                        [
                            Self.claimScript, "2", self.roomKey(room), self.ownerKey(room),
                            target, self.ownerHash(owner), String(self.settings.nodeTimeout.milliseconds),
                            String(self.settings.rehomeWindow.milliseconds), self.settings.prefix + "node:",
                        ]))
            }
            guard let parts = reply.elements, parts.count == 2, let verdict = parts[0].string, let node = parts[1].string else {
                throw RedisError.unexpectedReply(command: "EVAL")
            }
            switch verdict {
            case "ok", "owned", "moved":
                // "ok"/"moved": claimed for `node`; "owned": a live node already serves it.
                if verdict == "moved" { metrics.clusterRehomes.increment() }
                if node == settings.nodeID { return .local }
                guard let origin = try await liveOrigin(of: node) else {
                    return .refuse(.internal, "the room's node is unreachable; try again shortly")
                }
                metrics.clusterRedirects.increment()
                return .redirect(origin: origin)
            case "owner":
                return .refuse(.roomExists, "a room with the proposed id exists")
            default:
                throw RedisError.unexpectedReply(command: "EVAL")
            }
        } catch {
            metrics.clusterRedisErrors.increment()
            return .refuse(.internal, "the cluster's store is unreachable; try again shortly")
        }
    }

    /// The least-loaded active node (fewest participants, then rooms, then id), or this
    /// node when the view is empty or every node drains.
    ///
    /// The chosen node's load in this node's view goes up by one room and one participant
    /// at once, so that rooms created between two heartbeats do not all land on the node
    /// that was least loaded at the last one.
    func placement() -> String {
        state.withLock { s in
            let best = s.peers.values.filter { !$0.draining }.min { a, b in
                (a.participants, a.rooms, a.id) < (b.participants, b.rooms, b.id)
            }
            guard let best else { return settings.nodeID }
            s.peers[best.id] = ClusterPeer(
                id: best.id, origin: best.origin, participants: best.participants + 1,
                rooms: best.rooms + 1, cpu: best.cpu, draining: best.draining)
            return best.id
        }
    }

    /// The least-loaded active node other than this one, for clients of a draining node.
    func otherNodeOrigin() -> String? {
        state.withLock { s in
            s.peers.values.filter { !$0.draining && $0.id != settings.nodeID }
                .min { ($0.participants, $0.rooms, $0.id) < ($1.participants, $1.rooms, $1.id) }?.origin
        }
    }

    /// Completes when another process asked this node to drain (`conclave-relay drain`).
    func drainRequested() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.drainRequested || Task.isCancelled { return true }
                s.drainWaiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    /// Lets every ``drainRequested()`` return (the node stops for another reason).
    func releaseDrainWaiters() {
        let waiters = state.withLock { s in
            defer { s.drainWaiters = [] }; return s.drainWaiters
        }
        for w in waiters { w.resume() }
    }

    private func liveOrigin(of node: String) async throws -> String? {
        if let peer = state.withLock({ $0.peers[node] }) { return peer.origin }
        let value = try await timed { try await self.redis.send(RedisCommand("GET", [self.nodeKey(node)])) }.string
        return value.flatMap { ClusterPeer(id: node, encoded: $0) }?.origin
    }

    // MARK: - Heartbeat

    private func heartbeatLoop() async {
        while !Task.isCancelled {
            await heartbeat()
            try? await Task.sleep(for: settings.heartbeat)
        }
    }

    /// Writes this node's entry, refreshes its claims, reads every node's entry.
    func heartbeat() async {
        let (participants, rooms) = load()
        let (draining, owned, cpu) = state.withLock { s -> (Bool, [String: String], Double) in
            let now = ContinuousClock.now, used = Self.processCPUSeconds()
            if let last = s.lastCPU {
                let wall = Double((now - last.wall).nanoseconds) / 1e9
                if wall > 0.1 { s.cpu = max(0, (used - last.cpu) / wall) }
            }
            s.lastCPU = (now, used)
            return (s.draining, s.owned, s.cpu)
        }
        let me = ClusterPeer(id: settings.nodeID, origin: settings.origin, participants: participants, rooms: rooms, cpu: cpu, draining: draining)
        do {
            let replies = try await timed {
                try await self.redis.pipeline([
                    RedisCommand("SET", [self.nodeKey(self.settings.nodeID), me.encoded, "PX", String(self.settings.nodeTimeout.milliseconds)]),
                    RedisCommand("SADD", [self.nodesKey, self.settings.nodeID]),
                    RedisCommand("SMEMBERS", [self.nodesKey]),
                ])
            }
            _ = try await refresh(
                owned.map { key, ownerHash in
                    (key, settings.prefix + "owner:" + key.dropFirst((settings.prefix + "room:").count), ownerHash)
                })
            let ids = (replies[2].elements ?? []).compactMap(\.string).filter { $0.utf8.count <= 64 }.prefix(1024)
            var peers: [String: ClusterPeer] = [:]
            if !ids.isEmpty {
                let values = try await timed { try await self.redis.send(RedisCommand("MGET", ids.map(self.nodeKey))) }.elements ?? []
                var gone: [String] = []
                for (id, value) in zip(ids, values) {
                    if let text = value.string, let peer = ClusterPeer(id: id, encoded: text) { peers[id] = peer } else { gone.append(id) }
                }
                if !gone.isEmpty { _ = try? await redis.send(RedisCommand("SREM", [nodesKey] + gone)) }
            }
            let seen = peers.count
            state.withLock { $0.peers = peers }
            metrics.clusterNodes.record(seen)
        } catch {
            metrics.clusterRedisErrors.increment()
            logger.debug("cluster heartbeat failed", metadata: ["error": "\(error)"])
        }
    }

    /// Refreshes claims this node holds; re-claims any that lapsed (after a Redis restart,
    /// say) if nobody took them meanwhile.
    private func refresh(_ rooms: [(room: String, owner: String, ownerHash: String)]) async throws {
        guard !rooms.isEmpty else { return }
        let ttl = String(settings.nodeTimeout.milliseconds), window = String(settings.rehomeWindow.milliseconds)
        _ = try await timed {
            try await self.redis.pipeline(
                rooms.map {
                    RedisCommand("EVAL", [Self.refreshScript, "2", $0.room, $0.owner, self.settings.nodeID, ttl, window, $0.ownerHash])
                })
        }
    }

    private func eventLoop() async {
        for await event in subscriber.events {
            switch event {
            case .message(_, let payload) where String(decoding: payload, as: UTF8.self) == "drain " + settings.nodeID:
                let waiters = state.withLock { s in
                    s.drainRequested = true
                    defer { s.drainWaiters = [] }
                    return s.drainWaiters
                }
                logger.notice("drain requested through the cluster")
                for w in waiters { w.resume() }
            case .message, .subscribed:
                // Another node drained or left, or the bus is back: read the registry now.
                await heartbeat()
            case .disconnected:
                metrics.clusterRedisErrors.increment()
            }
        }
    }

    private func timed<T>(_ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        defer { metrics.clusterRedisLatency.recordNanoseconds((ContinuousClock.now - start).nanoseconds) }
        return try await body()
    }

    /// User plus system CPU seconds of this process (Linux: /proc/self/stat).
    static func processCPUSeconds() -> Double {
        guard let ticks = ProcessFigures.cpuTicks() else { return 0 }
        return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    // MARK: - Scripts (atomic on the Redis server)

    /// KEYS: room, owner. ARGV: target node, owner hash, room TTL ms, owner TTL ms, node key prefix.
    /// An owner record for another identity refuses ("owner"); a room held by a live node
    /// stays with it ("owned"); otherwise the room is claimed for the target: "moved" when
    /// its owner record outlived its last node (a re-home), else "ok".
    static let claimScript = """
        local o = redis.call('GET', KEYS[2])
        if o and o ~= ARGV[2] then return {'owner', ''} end
        local cur = redis.call('GET', KEYS[1])
        if cur and redis.call('EXISTS', ARGV[5] .. cur) == 1 then return {'owned', cur} end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
        redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
        if o then return {'moved', ARGV[1]} end
        return {'ok', ARGV[1]}
        """

    /// KEYS: room, owner. ARGV: this node, room TTL ms, owner TTL ms, owner hash.
    static let refreshScript = """
        local cur = redis.call('GET', KEYS[1])
        if cur == ARGV[1] or not cur then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
          return 1
        end
        return 0
        """

    /// KEYS: room, owner. ARGV: this node, "keep" or "drop" (the owner record).
    static let releaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('DEL', KEYS[1])
          if ARGV[2] == 'drop' then redis.call('DEL', KEYS[2]) end
          return 1
        end
        return 0
        """
}

extension Duration {
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
