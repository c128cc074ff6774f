import NIOCore
import Synchronization

/// What a ``LoopTicker`` ticks: a ``Participant``, or a test's counter. Called on the
/// ticker's loop with the ticker's tick number.
protocol LoopTicked: AnyObject, Sendable {
    func loopTick(_ tick: UInt64)
}

extension Participant: LoopTicked {
    nonisolated func loopTick(_ tick: UInt64) { assumeIsolated { $0.tick() } }
}

/// One 5 ms timer per event loop that ticks every ``Participant`` running on the loop,
/// instead of one timer per participant: the loop schedules 200 tasks a second whatever
/// the number of participants (a thousand participants would otherwise push and pop 50 000
/// timers a second through the loop's heap).
///
/// Members tick every `every` base ticks (4: 20 ms, 20: 100 ms); members with the same
/// period are spread over its phases, so that a loop's talkers do not all seal and send on
/// the same tick (a burst that would delay the frames that arrive meanwhile). The
/// grid is fixed: a late tick does not move the next one. A late loop runs the base ticks it
/// missed as one, ticking each member whose phase fell among them once: a few milliseconds
/// late costs no one a tick, and a loop that fell a whole period behind ticks each member
/// once rather than run the missed ticks back to back (which would send a burst of stale
/// audio). Everything runs on the loop; the registry is the only shared
/// state.
final class LoopTicker: @unchecked Sendable {
    /// The base period.
    static let interval = TimeAmount.milliseconds(5)

    /// A registration; pass it back to ``remove(_:)``.
    struct Token: Hashable {
        fileprivate let id: UInt64
    }

    private struct Member {
        let id: UInt64
        weak var participant: (any LoopTicked)?
        let every: UInt64
        let phase: UInt64
    }

    let loop: any EventLoop
    // Confined to `loop` (the class is @unchecked Sendable for the registry only).
    private var members: [Member] = []
    private var nextID: UInt64 = 0
    private var tickCount: UInt64 = 0
    private var nextDeadline = NIODeadline.now()
    private var scheduled: Scheduled<Void>?

    private init(loop: any EventLoop) { self.loop = loop }

    private static let registry = Mutex<[ObjectIdentifier: LoopTicker]>([:])

    /// The ticker of `loop` (created on first use; event loops live as long as their group).
    static func of(_ loop: any EventLoop) -> LoopTicker {
        registry.withLock { tickers in
            if let t = tickers[ObjectIdentifier(loop)] { return t }
            let t = LoopTicker(loop: loop)
            tickers[ObjectIdentifier(loop)] = t
            return t
        }
    }

    /// On the loop: ticks `participant` every `every` base ticks from the next one on.
    func add(_ participant: any LoopTicked, every: UInt64) -> Token {
        loop.preconditionInEventLoop()
        nextID += 1
        let period = max(1, every)
        let sharing = UInt64(members.count(where: { $0.every == period }))
        members.append(Member(id: nextID, participant: participant, every: period, phase: sharing % period))
        if scheduled == nil {
            nextDeadline = NIODeadline.now() + Self.interval
            schedule()
        }
        return Token(id: nextID)
    }

    /// On the loop: stops ticking this registration (and the timer, with the last one).
    func remove(_ token: Token) {
        loop.preconditionInEventLoop()
        members.removeAll { $0.id == token.id || $0.participant == nil }
        if members.isEmpty {
            scheduled?.cancel()
            scheduled = nil
        }
    }

    /// Members registered now, and whether the timer is armed (tests).
    var memberCount: Int {
        loop.preconditionInEventLoop()
        return members.count
    }
    var isScheduled: Bool {
        loop.preconditionInEventLoop()
        return scheduled != nil
    }

    private func schedule() {
        scheduled = loop.scheduleTask(deadline: nextDeadline) { [self] in fire() }
    }

    private func fire() {
        // The base ticks due by now: this one, and any the loop was too late to run (a busy
        // or descheduled thread). A member ticks once if its phase fell among them, so a loop
        // a few milliseconds late costs no one a frame, and one late by more than a period
        // ticks each member once, not in a burst. The grid stays where it was.
        let now = NIODeadline.now()
        let late = max(0, (now - nextDeadline).nanoseconds)
        let due = UInt64(late / Self.interval.nanoseconds) + 1
        tickCount &+= due
        nextDeadline = nextDeadline + Self.interval * Int64(due)
        let last = tickCount
        var lost = false
        for member in members {
            // The newest due base tick on this member's phase, if any.
            let offset = (last % member.every + member.every - member.phase) % member.every
            guard offset < due else { continue }
            guard let participant = member.participant else {
                lost = true
                continue
            }
            participant.loopTick(last - offset)
        }
        if lost { members.removeAll { $0.participant == nil } }
        if members.isEmpty {
            scheduled = nil
        } else {
            schedule()
        }
    }
}
