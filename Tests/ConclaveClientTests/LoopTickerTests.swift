@testable import ConclaveClient
import ConclaveTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// The one timer per event loop that ticks the participants on it (issue 14): periods,
/// phases spread so that a loop's talkers do not all send on the same tick, and the timer
/// disarmed with the last member.
@Suite struct LoopTickerTests {
    final class Counter: LoopTicked {
        let ticks = Mutex<[UInt64]>([])
        func loopTick(_ tick: UInt64) { ticks.withLock { $0.append(tick) } }
        var seen: [UInt64] { ticks.withLock { $0 } }
    }

    @Test func membersTickEveryPeriodOnSpreadPhasesAndTheTimerStopsWithTheLast() async throws {
        // A loop of its own: the shared group's loops carry other tests' participants.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await check(group.next())
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    func check(_ loop: any EventLoop) async throws {
        let ticker = LoopTicker.of(loop)
        #expect(LoopTicker.of(loop) === ticker, "one ticker per loop")
        let talkers = (0..<8).map { _ in Counter() }
        let listener = Counter()
        let tokens = try await loop.submit {
            talkers.map { ticker.add($0, every: 4) } + [ticker.add(listener, every: 20)]
        }.get()
        try await waitUntil("every talker ticked 3 times and the listener twice", within: .seconds(10)) {
            talkers.allSatisfy { $0.seen.count >= 3 } && listener.seen.count >= 2
        }
        // Each member keeps its phase and ticks once per period; a loop late by more than a
        // period (a loaded machine) ticks it once for the lot, so a gap may span periods.
        for t in talkers {
            let seen = t.seen
            #expect(zip(seen, seen.dropFirst()).allSatisfy { $1 > $0 && ($1 - $0) % 4 == 0 }, "a talker ticks on its phase of 4: \(seen)")
        }
        let l = listener.seen
        #expect(zip(l, l.dropFirst()).allSatisfy { $1 > $0 && ($1 - $0) % 20 == 0 }, "the listener on its phase of 20: \(l)")
        // Eight talkers over four phases: two per phase, never all eight on one tick.
        let phases = Dictionary(grouping: talkers.map { $0.seen[0] % 4 }, by: { $0 }).mapValues(\.count)
        #expect(phases.count == 4 && phases.values.allSatisfy { $0 == 2 }, "phases: \(phases)")

        let (remaining, armedWithOne, armedWithNone) = try await loop.submit { () -> (Int, Bool, Bool) in
            for token in tokens.dropLast() { ticker.remove(token) }
            let armed = ticker.isScheduled
            let count = ticker.memberCount
            ticker.remove(tokens.last!)
            return (count, armed, ticker.isScheduled)
        }.get()
        #expect(remaining == 1 && armedWithOne, "the listener still ticks")
        #expect(!armedWithNone, "no member: no timer")
    }
}
