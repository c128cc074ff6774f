import ConclaveCrypto
import ConclaveProtocol

/// The CPU cost of one rekey after a removal in one process, without network or runtime:
/// the leader's ``LeaderKeySchedule/remove(_:now:)`` and every remaining member's
/// ``MemberKeySchedule`` work on what it receives, then ``EpochInstall/apply(receiver:sender:now:)``.
/// Run for the full path (`ROSTER` + key packages) and the delta path (`ROSTER_DELTA` +
/// key wraps) on the same room in the same run, so the ratio holds on a noisy machine.
public enum RekeyBench {
    public struct PathResult: Sendable, Equatable {
        /// The leader's `remove`, in milliseconds.
        public var leaderMillis: Double
        /// Sum over the members of their receive, check and install, in milliseconds.
        public var membersMillis: Double
        /// Bytes the relay forwards for the rekey: the broadcast once per member, plus each
        /// member's key package or wrap.
        public var bytesForwarded: Int
        /// Per member: median and largest receive-check-install, in microseconds.
        public var memberMedianMicros: Double
        public var memberMaxMicros: Double
        /// Members that installed the new epoch (must be every remaining member).
        public var installed: Int
    }

    public struct Report: Sendable, Equatable {
        public var members: Int
        public var full: PathResult
        public var delta: PathResult

        public func renderText() -> String {
            func row(_ name: String, _ r: PathResult) -> String {
                let leader = String(format: "%9.2f", r.leaderMillis), total = String(format: "%9.2f", r.membersMillis)
                let median = String(format: "%8.1f", r.memberMedianMicros), maximum = String(format: "%8.1f", r.memberMaxMicros)
                return
                    "\(name.padding(toLength: 26, withPad: " ", startingAt: 0)) \(leader) \(total) \(median) \(maximum) \(String(format: "%11d", r.bytesForwarded)) \(r.installed)"
            }
            let ratio = (full.leaderMillis + full.membersMillis) / max(0.001, delta.leaderMillis + delta.membersMillis)
            return """
                Rekey after one removal, \(members) members, one process, CPU only (no network)
                path                       leader ms members ms  med µs   max µs   bytes fwd installed
                \(row("ROSTER + key packages", full))
                \(row("ROSTER_DELTA + key wraps", delta))
                full / delta CPU: \(String(format: "%.1f", ratio))×
                """
        }

        public func renderJSON() -> String {
            func obj(_ r: PathResult) -> String {
                "{\"leader_ms\":\(r.leaderMillis),\"members_ms\":\(r.membersMillis),\"member_median_us\":\(r.memberMedianMicros),"
                    + "\"member_max_us\":\(r.memberMaxMicros),\"bytes_forwarded\":\(r.bytesForwarded),\"installed\":\(r.installed)}"
            }
            return "{\"members\":\(members),\"full\":\(obj(full)),\"delta\":\(obj(delta))}"
        }
    }

    struct Member {
        let index: UInt16
        let identity: PrivateIdentity
        var schedule: MemberKeySchedule
        var ring: ReceiverKeyRing
        var sender: SenderKeyState
    }

    /// A room of `members` (the leader included, 3…500) keyed by one admission, then one
    /// removal measured on each path.
    /// `deltaOnly` skips the full path (for profiling the delta path alone; its result is zero).
    public static func run(members: Int, deltaOnly: Bool = false) throws -> Report {
        precondition((3...SignedRoster.maximumMembers).contains(members))
        let roomID = RoomID(bytes: SecureRandom.bytes(count: RoomID.byteCount))!
        let leaderIdentity = PrivateIdentity.generate()
        var full = try makeRoom(roomID: roomID, leaderIdentity: leaderIdentity, members: members)
        var delta = full
        full.leader.sendsDeltas = false
        let fullResult =
            deltaOnly
            ? PathResult(leaderMillis: 0, membersMillis: 0, bytesForwarded: 0, memberMedianMicros: 0, memberMaxMicros: 0, installed: 0)
            : try measure(&full)
        let deltaResult = try measure(&delta)
        return Report(members: members, full: fullResult, delta: deltaResult)
    }

    struct Room {
        var leader: LeaderKeySchedule
        var members: [Member]
    }

    static func makeRoom(roomID: RoomID, leaderIdentity: PrivateIdentity, members n: Int) throws -> Room {
        var leader = LeaderKeySchedule(roomID: roomID, me: 1, identity: leaderIdentity, displayName: "leader")
        _ = try leader.start(now: 0)
        var members: [Member] = []
        var entries: [SignedRoster.Entry] = []
        for i in 2...n {
            let id = PrivateIdentity.generate()
            let nonce = SecureRandom.bytes(count: Knock.joinNonceLength)
            let index = UInt16(i)
            entries.append(
                SignedRoster.Entry(
                    index: index, identity: id.publicIdentity, displayName: "member \(i)".padding(toLength: 24, withPad: ".", startingAt: 0), joinNonce: nonce))
            let schedule = MemberKeySchedule(
                roomID: roomID, me: index, identity: id, joinNonce: nonce, leaderIndex: 1,
                leaderIdentity: leaderIdentity.publicIdentity)
            members.append(
                Member(
                    index: index, identity: id, schedule: schedule, ring: ReceiverKeyRing(roomID: roomID, me: index),
                    sender: SenderKeyState(roomID: roomID, me: index)))
        }
        let actions = try leader.changeMembership(admit: entries, remove: [], now: 0)
        var room = Room(leader: leader, members: members)
        deliver(actions, to: &room.members, now: 0)
        return room
    }

    /// Hands every action to its recipients as the relay would (broadcast first, then each
    /// member's own messages in order) and applies what the members return.
    @discardableResult
    static func deliver(_ actions: [LeaderAction], to members: inout [Member], now: UInt64, timings: UnsafeMutableBufferPointer<UInt64>? = nil) -> Int {
        var installed = 0
        var broadcast: [[UInt8]] = []
        var addressed: [UInt16: [(control: Bool, bytes: [UInt8])]] = [:]
        for action in actions {
            switch action {
            case let .broadcastControl(bytes): broadcast.append(bytes)
            case let .sendKeyPackage(recipient, payload): addressed[recipient, default: []].append((false, payload))
            case let .sendControl(recipient, plaintext): addressed[recipient, default: []].append((true, plaintext))
            case .install: break
            }
        }
        for k in members.indices {
            let start = ContinuousClock.now
            var m = members[k]
            var results: [MemberAction] = []
            for b in broadcast { results += (try? m.schedule.receiveControl(b, from: 1)) ?? [] }
            for (control, bytes) in addressed[m.index] ?? [] {
                results += (control ? try? m.schedule.receiveControl(bytes, from: 1) : try? m.schedule.receiveKeyPackage(bytes, from: 1)) ?? []
            }
            for case let .install(i) in results {
                i.apply(receiver: &m.ring, sender: &m.sender, now: now)
                installed += 1
            }
            for case let .membersRemoved(gone) in results { m.ring.revoke(gone) }
            members[k] = m
            if let timings {
                let d = ContinuousClock.now - start
                timings[k] = UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
            }
        }
        return installed
    }

    static func measure(_ room: inout Room) throws -> PathResult {
        let victim = room.members.last!.index
        let now: UInt64 = 10_000
        let leaderStart = ContinuousClock.now
        let actions = try room.leader.remove(victim, now: now)
        let leaderTime = ContinuousClock.now - leaderStart
        var remaining = Array(room.members.dropLast())
        var bytes = 0
        for action in actions {
            switch action {
            case let .broadcastControl(b): bytes += b.count * remaining.count
            case let .sendKeyPackage(_, p): bytes += p.count
            case let .sendControl(_, p): bytes += p.count
            case .install: break
            }
        }
        var timings = [UInt64](repeating: 0, count: remaining.count)
        let installed = timings.withUnsafeMutableBufferPointer { deliver(actions, to: &remaining, now: now, timings: $0) }
        room.members = remaining
        let sorted = timings.sorted()
        func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1_000 + Double(d.components.attoseconds) / 1e15 }
        return PathResult(
            leaderMillis: ms(leaderTime), membersMillis: Double(timings.reduce(0, +)) / 1e6, bytesForwarded: bytes,
            memberMedianMicros: Double(sorted[sorted.count / 2]) / 1e3, memberMaxMicros: Double(sorted.last!) / 1e3,
            installed: installed)
    }
}
