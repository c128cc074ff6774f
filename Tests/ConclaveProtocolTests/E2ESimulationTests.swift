import Testing
import ConclaveCrypto
@testable import ConclaveProtocol

/// "Nothing garbles": steady audio through joins and leaves with realistic delivery
/// orders, through the real leader and member schedules, rings and senders.
@Suite struct E2ESimulationTests {
    final class Random: @unchecked Sendable {
        var generator: SplitMix64
        init(seed: UInt64) { generator = SplitMix64(seed: seed) }
        func upTo(_ n: UInt64) -> UInt64 { UInt64.random(in: 0...n, using: &generator) }
    }

    /// Leader #1 with #2 and #3 from the start (the three steady senders), then #4 joins
    /// at 1.5 s, #5 at 3 s, #4 leaves at 4.5 s, #6 joins while #5 leaves at 6 s (one
    /// batch: fresh secret). Everyone present sends 20 ms audio frames (50 fps) until 8 s.
    /// Media frames take 5–305 ms each, independently, so they reorder and old-epoch
    /// frames arrive up to 300 ms after the sender switched; the leader's control frames
    /// and key packages take 10–510 ms per recipient (in order), so frames of a new epoch
    /// often arrive before the key package that opens them. The relay tells the leader of
    /// each join or leave 20 ms later.
    @Test(arguments: [UInt64(1), 2, 3])
    func nothingGarblesAcrossJoinsAndLeaves(seed: UInt64) throws {
        let random = Random(seed: seed)
        let room = E2ERoom()
        room.mediaDelay = { _, _ in 5 + random.upTo(300) }
        room.controlDelay = { _ in 10 + random.upTo(500) }
        try room.createLeader(name: "Host")
        var everyone: [UInt16: E2EPeer] = [1: room.leader]
        var leaderTodo: [(at: UInt64, admit: [E2EPeer], remove: [UInt16])] = []

        func join(_ index: UInt16, at t: UInt64) throws -> E2EPeer {
            let peer = try room.join(index: index, name: "P\(index)", leaderReacts: false)
            everyone[index] = peer
            return peer
        }
        let script: [UInt64: () throws -> Void] = [
            0: { leaderTodo.append((20, [try join(2, at: 0), try join(3, at: 0)], [])) },
            1_500: { leaderTodo.append((1_520, [try join(4, at: 1_500)], [])) },
            3_000: { leaderTodo.append((3_020, [try join(5, at: 3_000)], [])) },
            4_500: {
                try room.leave(index: 4, leaderReacts: false); leaderTodo.append((4_520, [], [4]))
            },
            6_000: {
                let six = try join(6, at: 6_000)
                try room.leave(index: 5, leaderReacts: false)
                leaderTodo.append((6_020, [six], [5]))
            },
        ]
        var sequence: [UInt16: Int] = [:]
        for t in UInt64(0)..<9_500 {
            room.run(until: t)
            try script[t]?()
            while let next = leaderTodo.first, next.at <= t {
                leaderTodo.removeFirst()
                try room.leaderHandles(admit: next.admit, remove: next.remove)
            }
            if t < 8_000 {
                for (index, peer) in room.peers.sorted(by: { $0.key < $1.key }) where t % 20 == UInt64(index) * 3 % 20 {
                    guard peer.sender.sendingEpoch(at: t) != nil, peer.member?.awaitingRoster != true else { continue }
                    let n = sequence[index, default: 0]
                    sequence[index] = n + 1
                    try room.send(from: index, plaintext: Array("audio \(index):\(n)".utf8))
                }
            }
            if t % 50 == 0 { for peer in room.peers.values { peer.ring.advance(to: t) } }
        }
        room.flush()

        // Epochs: 1 (start), 2 (#2 and #3, one batch), 3 (#4), 4 (#5), 5 (#4 left), 6 (#6 in, #5 out).
        #expect(room.leader.leader!.epoch == 6)
        #expect(room.sent.count > 1_400)
        var totalOpened = 0
        for (index, peer) in everyone.sorted(by: { $0.key < $1.key }) {
            let c = peer.ring.counters
            #expect(peer.rejections.isEmpty, "#\(index): \(peer.rejections)")
            let first = try #require(peer.firstEpoch)
            let mine = room.delivered.filter { $0.to == index }
            // Frames of a member who left that arrive after the ROSTER without it verified
            // are dropped as removed_member (removal is immediate, 3.6), and only those; no
            // frame is ever from a stranger (not_member).
            let late = mine.filter { $0.afterRemoval && $0.mediaID != nil && $0.epoch >= first }
            #expect(late.allSatisfy { [4, 5].contains(room.sent[$0.mediaID!].header.sender.rawValue) }, "#\(index)")
            #expect(c.decryptFailed == 0 && c.noKey == 0 && c.removedMember == late.count && c.notMember == 0 && c.senderMismatch == 0, "#\(index): \(c)")
            #expect(c.replayed == 0 && c.tooOld == 0, "#\(index): \(c)")
            // Frames of epochs before this member's first one are not for it: unknownEpoch, nothing else.
            #expect(c.unknownEpoch == mine.filter { $0.epoch < first }.count, "#\(index)")
            // Every media frame of its epochs opened, with its exact plaintext, and nothing else.
            let expected = mine.compactMap { d in d.mediaID.flatMap { d.epoch >= first && !d.afterRemoval ? room.sent[$0].plaintext : nil } }
            #expect(peer.received.count == expected.count, "#\(index): opened \(peer.received.count) of \(expected.count)")
            #expect(peer.received.map(\.plaintext).sorted { $0.lexicographicallyPrecedes($1) } == expected.sorted { $0.lexicographicallyPrecedes($1) })
            #expect(peer.ring.bufferedFrameCount == 0)
            totalOpened += peer.received.count
        }
        // Some frames really did arrive before their key (buffered, then released).
        #expect(everyone.values.reduce(0) { $0 + $1.ring.counters.openedFromBuffer } > 0)
        #expect(totalOpened > 4_000)
        // The members present at the end agree with the leader.
        for peer in room.peers.values {
            #expect(peer.ring.currentEpoch == 6 && peer.currentSecurityCode == room.leader.currentSecurityCode, "#\(peer.index)")
        }
    }

    /// Issue 10, defect 8: a member joins and leaves four times in a row, so the leader
    /// rekeys eight times within about 40 ms, while audio from the steady members is in
    /// flight for 150 ms. Every frame of an epoch a receiver held must open: a receiver
    /// keeps every epoch its grace period needs, not just one previous epoch.
    @Test func aBurstOfEpochsGarblesNothing() throws {
        let room = E2ERoom()
        room.mediaDelay = { _, _ in 150 }
        room.controlDelay = { _ in 1 }
        try room.createLeader(name: "Host")
        try room.join(index: 2, name: "Ann")
        try room.join(index: 3, name: "Bob")
        room.run(until: 1_000)
        let steady: [UInt16] = [1, 2, 3]
        let firstEpoch = room.leader.leader!.epoch
        let before = Dictionary(uniqueKeysWithValues: steady.map { ($0, room.peers[$0]!.ring.counters) })
        var n = 0
        for t in UInt64(1_000)..<3_000 {
            room.run(until: t)
            // The churn: #10… joins, then leaves 5 ms later; four times, 10 ms apart.
            if (1_200..<1_240).contains(t), (t - 1_200) % 10 == 0 {
                try room.join(index: UInt16(10 + (t - 1_200) / 10), name: "Churn")
            }
            if (1_205..<1_245).contains(t), (t - 1_205) % 10 == 0 {
                try room.leave(index: UInt16(10 + (t - 1_205) / 10))
            }
            if t < 2_500, t % 5 == 0 {
                for i in steady {
                    n += 1
                    try room.send(from: i, plaintext: Array("audio \(i):\(n)".utf8))
                }
            }
            if t % 50 == 0 { for peer in room.peers.values { peer.ring.advance(to: t) } }
        }
        room.flush()
        #expect(room.leader.leader!.epoch >= firstEpoch + 8, "only \(room.leader.leader!.epoch - firstEpoch) epoch changes")
        for i in steady {
            let peer = room.peers[i]!
            // What the burst added to the counters (setup frames before it are not its doing).
            let c = peer.ring.counters, b = before[i]!
            #expect(
                c.decryptFailed == b.decryptFailed && c.noKey == b.noKey && c.unknownEpoch == b.unknownEpoch && c.tooOld == b.tooOld,
                "#\(i): \(c), before the burst \(b)")
            let expected = room.sent.filter { $0.header.sender.rawValue != i && steady.contains($0.header.sender.rawValue) }.count
            let got = peer.received.filter { steady.contains($0.sender) }.count
            #expect(got == expected, "#\(i) opened \(got) of \(expected) frames from the steady members")
        }
    }
}
