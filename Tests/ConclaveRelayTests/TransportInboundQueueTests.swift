@testable import ConclaveClient
import ConclaveProtocol
import Testing

/// The inbound queue's state machine, without sockets (STYLE.md §1).
@Suite("Client transport inbound queue")
struct TransportInboundQueueTests {
    final class Waiter {}

    private func item(_ byte: Int) -> RelayInbound {
        .undecodable(bytes: [UInt8(byte)], error: .truncated(field: "type"))
    }

    @Test("Buffered items come out in order, then .closed, then the end")
    func ordering() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2)
        let waiter = Waiter()
        for byte in 0 ..< 3 { #expect(isBuffered(queue.receive(item(byte)))) }
        #expect(queue.finish(.closed(code: 1000, reason: nil)).isEmpty)
        for byte in 0 ..< 3 { #expect(queue.next(for: waiter) == .item(item(byte), resumeReading: false)) }
        #expect(queue.next(for: waiter) == .item(.closed(code: 1000, reason: nil), resumeReading: false))
        #expect(queue.next(for: waiter) == .end)
        #expect(queue.next(for: waiter) == .end)
    }

    @Test("A waiting consumer is handed the next item directly")
    func waiterIsResumed() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2)
        let waiter = Waiter()
        #expect(queue.next(for: waiter) == .wait)
        guard case let .resume(resumed, delivered) = queue.receive(item(1)) else {
            Issue.record("expected the waiter to be resumed")
            return
        }
        #expect(resumed === waiter && delivered == item(1))
        #expect(queue.bufferedCount == 0 && queue.waiterCount == 0)
    }

    @Test("finish hands .closed to the first waiter and ends the others")
    func finishResumesWaiters() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2)
        let first = Waiter(), second = Waiter()
        #expect(queue.next(for: first) == .wait)
        #expect(queue.next(for: second) == .wait)
        let resumptions = queue.finish(.closed(code: nil, reason: nil))
        #expect(resumptions.count == 2)
        #expect(resumptions[0].0 === first && resumptions[0].1 == .closed(code: nil, reason: nil))
        #expect(resumptions[1].0 === second && resumptions[1].1 == nil)
        #expect(queue.finish(.closed(code: 1000, reason: nil)).isEmpty, "finish is idempotent")
        #expect(isIgnored(queue.receive(item(9))), "nothing is accepted after .closed")
        #expect(queue.next(for: first) == .end)
    }

    @Test("A removed waiter is not resumed")
    func removedWaiter() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2)
        let waiter = Waiter()
        #expect(queue.next(for: waiter) == .wait)
        let removed = queue.removeWaiter(waiter)
        let removedAgain = queue.removeWaiter(waiter)
        #expect(removed && !removedAgain)
        #expect(isBuffered(queue.receive(item(1))))
    }

    @Test("Reads stop at the high watermark and resume at the low watermark, dropping nothing")
    func watermarks() {
        var queue = InboundQueue<Waiter>(highWatermark: 4, lowWatermark: 1)
        let waiter = Waiter()
        #expect(queue.readRequested() == .forward)
        for byte in 0 ..< 4 { _ = queue.receive(item(byte)) }
        #expect(queue.readRequested() == .withhold)
        // Items beyond the watermark (the rest of a read burst) are still kept.
        for byte in 4 ..< 6 { #expect(isBuffered(queue.receive(item(byte)))) }
        #expect(queue.bufferedCount == 6)
        for byte in 0 ..< 4 { #expect(queue.next(for: waiter) == .item(item(byte), resumeReading: false)) }
        #expect(queue.readRequested() == .withhold, "still above the low watermark")
        #expect(queue.next(for: waiter) == .item(item(4), resumeReading: true), "drained to 1: the withheld read goes out")
        #expect(queue.readRequested() == .forward)
        #expect(queue.next(for: waiter) == .item(item(5), resumeReading: false))
    }

    @Test("A user pause withholds reads regardless of the buffer")
    func userPause() {
        var queue = InboundQueue<Waiter>(highWatermark: 4, lowWatermark: 1)
        let pausing = queue.setPausedByUser(true)
        #expect(!pausing)
        #expect(queue.readRequested() == .withhold)
        let resuming = queue.setPausedByUser(false)
        #expect(resuming, "resuming issues the withheld read")
        let resumingAgain = queue.setPausedByUser(false)
        #expect(!resumingAgain, "only once")
        #expect(queue.readRequested() == .forward)

        // Paused and over the watermark: draining alone does not resume reading.
        for byte in 0 ..< 4 { _ = queue.receive(item(byte)) }
        _ = queue.setPausedByUser(true)
        #expect(queue.readRequested() == .withhold)
        let waiter = Waiter()
        for _ in 0 ..< 4 {
            guard case .item(_, false) = queue.next(for: waiter) else {
                Issue.record("reading resumed while paused")
                return
            }
        }
        let resumed = queue.setPausedByUser(false)
        #expect(resumed, "unpausing after the drain issues the withheld read")
    }

    private func isBuffered(_ action: InboundQueue<Waiter>.ReceiveAction) -> Bool {
        if case .buffered = action { return true }
        return false
    }

    private func isIgnored(_ action: InboundQueue<Waiter>.ReceiveAction) -> Bool {
        if case .ignored = action { return true }
        return false
    }
}
