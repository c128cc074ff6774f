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
        for byte in 0..<3 { #expect(isBuffered(queue.receive(item(byte), at: 0))) }
        #expect(queue.finish(.closed(code: 1000, reason: nil)).isEmpty)
        for byte in 0..<3 { #expect(queue.next(for: waiter, at: 0) == .item(item(byte), resumeReading: false)) }
        #expect(queue.next(for: waiter, at: 0) == .item(.closed(code: 1000, reason: nil), resumeReading: false))
        #expect(queue.next(for: waiter, at: 0) == .end)
        #expect(queue.next(for: waiter, at: 0) == .end)
    }

    @Test("Idle with a waiter only when a consumer waits and nothing is queued (the inline audio path's condition)")
    func idleWithWaiter() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2)
        let waiter = Waiter()
        #expect(!queue.isIdleWithWaiter, "no consumer waits")
        #expect(isBuffered(queue.receive(item(1), at: 0)))
        #expect(!queue.isIdleWithWaiter)
        #expect(queue.next(for: waiter, at: 0) == .item(item(1), resumeReading: false))
        #expect(queue.next(for: waiter, at: 0) == .wait)
        #expect(queue.isIdleWithWaiter, "a consumer waits on an empty queue: an item now would go straight to it")
        _ = queue.receive(item(2), at: 0)  // resumes the waiter
        #expect(!queue.isIdleWithWaiter, "the waiter was taken")
        #expect(queue.next(for: waiter, at: 0) == .wait)
        _ = queue.finish(.closed(code: 1000, reason: nil))
        #expect(!queue.isIdleWithWaiter, "a finished queue is never idle")
    }

    @Test("A waiting consumer is handed the next item directly")
    func waiterIsResumed() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2)
        let waiter = Waiter()
        #expect(queue.next(for: waiter, at: 0) == .wait)
        guard case let .resume(resumed, delivered) = queue.receive(item(1), at: 0) else {
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
        #expect(queue.next(for: first, at: 0) == .wait)
        #expect(queue.next(for: second, at: 0) == .wait)
        let resumptions = queue.finish(.closed(code: nil, reason: nil))
        #expect(resumptions.count == 2)
        #expect(resumptions[0].0 === first && resumptions[0].1 == .closed(code: nil, reason: nil))
        #expect(resumptions[1].0 === second && resumptions[1].1 == nil)
        #expect(queue.finish(.closed(code: 1000, reason: nil)).isEmpty, "finish is idempotent")
        #expect(isIgnored(queue.receive(item(9), at: 0)), "nothing is accepted after .closed")
        #expect(queue.next(for: first, at: 0) == .end)
    }

    @Test("A removed waiter is not resumed")
    func removedWaiter() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2)
        let waiter = Waiter()
        #expect(queue.next(for: waiter, at: 0) == .wait)
        let removed = queue.removeWaiter(waiter)
        let removedAgain = queue.removeWaiter(waiter)
        #expect(removed && !removedAgain)
        #expect(isBuffered(queue.receive(item(1), at: 0)))
    }

    @Test("Reads stop at the high watermark and resume at the low watermark, dropping nothing")
    func watermarks() {
        var queue = InboundQueue<Waiter>(highWatermark: 4, lowWatermark: 1)
        let waiter = Waiter()
        #expect(queue.readRequested() == .forward)
        for byte in 0..<4 { _ = queue.receive(item(byte), at: 0) }
        #expect(queue.readRequested() == .withhold)
        // Items beyond the watermark (the rest of a read burst) are still kept.
        for byte in 4..<6 { #expect(isBuffered(queue.receive(item(byte), at: 0))) }
        #expect(queue.bufferedCount == 6)
        for byte in 0..<4 { #expect(queue.next(for: waiter, at: 0) == .item(item(byte), resumeReading: false)) }
        #expect(queue.readRequested() == .withhold, "still above the low watermark")
        #expect(queue.next(for: waiter, at: 0) == .item(item(4), resumeReading: true), "drained to 1: the withheld read goes out")
        #expect(queue.readRequested() == .forward)
        #expect(queue.next(for: waiter, at: 0) == .item(item(5), resumeReading: false))
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
        for byte in 0..<4 { _ = queue.receive(item(byte), at: 0) }
        _ = queue.setPausedByUser(true)
        #expect(queue.readRequested() == .withhold)
        let waiter = Waiter()
        for _ in 0..<4 {
            guard case .item(_, false) = queue.next(for: waiter, at: 0) else {
                Issue.record("reading resumed while paused")
                return
            }
        }
        let resumed = queue.setPausedByUser(false)
        #expect(resumed, "unpausing after the drain issues the withheld read")
    }

    private func frame(_ kind: FrameKind, _ byte: UInt8) -> RelayInbound {
        .message(
            .frame(try! FrameMessage(kind: kind, sender: ParticipantIndex(2), recipient: kind == .keys ? ParticipantIndex(3) : .everyone, payload: [byte])))
    }

    @Test("Issue 10, defect 9: a flood of audio nobody takes stays within the media bound; control is kept")
    func audioFloodIsBounded() {
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2, mediaLimit: 1_000)
        _ = queue.receive(frame(.keys, 1), at: 0)
        for n in 0..<10_000 { _ = queue.receive(frame(.audio, UInt8(truncatingIfNeeded: n)), at: 0) }
        _ = queue.receive(frame(.chat, 2), at: 0)
        #expect(queue.bufferedCount <= 1_100, "\(queue.bufferedCount) items buffered")
        #expect(queue.statistics.mediaOverflowDropped == 9_000 && queue.statistics.peakQueuedMedia == 1_000)
        #expect(queue.readRequested() == .forward, "media never holds back reading")
        let waiter = Waiter()
        var kinds: [FrameKind] = []
        var payloads: [UInt8] = []
        while case let .item(.message(.frame(f)), _) = queue.next(for: waiter, at: 0) {
            kinds.append(f.header.kind)
            payloads.append(f.payload[0])
        }
        #expect(kinds.first == .keys && kinds.last == .chat, "control and keys are never dropped, and keep their order")
        #expect(kinds.count == 1_002)
        // The newest 1 000 audio frames survive (9 000 ... 9 999), oldest first.
        #expect(payloads[1] == UInt8(truncatingIfNeeded: 9_000) && payloads[1_000] == UInt8(truncatingIfNeeded: 9_999))
    }

    @Test("Audio that waited longer than the stale limit is dropped when taken; control never is")
    func staleAudioIsDropped() {
        let ms: UInt64 = 1_000_000
        var queue = InboundQueue<Waiter>(highWatermark: 10, lowWatermark: 2, mediaLimit: 100, staleAudioNanos: 200 * ms)
        let waiter = Waiter()
        _ = queue.receive(frame(.audio, 1), at: 0)
        _ = queue.receive(frame(.keys, 2), at: 10 * ms)
        _ = queue.receive(frame(.audio, 3), at: 19 * ms)
        _ = queue.receive(frame(.audio, 4), at: 150 * ms)
        _ = queue.receive(frame(.chat, 5), at: 160 * ms)
        // At 220 ms: frames 1 and 3 are over 200 ms old; the key package (older still) is kept.
        var got: [UInt8] = []
        while case let .item(.message(.frame(f)), _) = queue.next(for: waiter, at: 220 * ms) { got.append(f.payload[0]) }
        #expect(got == [2, 4, 5])
        #expect(queue.statistics.staleAudioDropped == 2 && queue.statistics.mediaOverflowDropped == 0)
        // Exactly at the limit is not stale.
        _ = queue.removeWaiter(waiter)
        _ = queue.receive(frame(.audio, 6), at: 1_000 * ms)
        #expect(queue.next(for: waiter, at: 1_200 * ms) == .item(frame(.audio, 6), resumeReading: false))
    }

    @Test("keepAll: media is kept like control, and reads stop at the watermark instead")
    func keepAllMedia() {
        var queue = InboundQueue<Waiter>(highWatermark: 4, lowWatermark: 1, mediaLimit: 2, staleAudioNanos: 1, mediaIsDroppable: false)
        for n in 0..<10 { _ = queue.receive(frame(.audio, UInt8(n)), at: 0) }
        #expect(queue.readRequested() == .withhold)
        let waiter = Waiter()
        var got: [UInt8] = []
        while case let .item(.message(.frame(f)), _) = queue.next(for: waiter, at: 1_000_000_000) { got.append(f.payload[0]) }
        #expect(got == Array(0..<10) && queue.statistics.mediaDropped == 0)
    }

    @Test("Media and control interleave in arrival order; UDP screen frames are media, WebSocket ones control")
    func interleavingAndClasses() {
        var queue = InboundQueue<Waiter>(highWatermark: 3, lowWatermark: 1, mediaLimit: 2)
        let waiter = Waiter()
        _ = queue.receive(frame(.audio, 1), at: 0)
        _ = queue.receive(frame(.screen, 2), at: 0)  // WebSocket: control
        _ = queue.receive(frame(.screen, 3), at: 0, viaMediaPath: true)  // UDP: media
        _ = queue.receive(frame(.chat, 4), at: 0)
        #expect(queue.statistics.peakQueuedMedia == 2 && queue.statistics.peakQueuedControl == 2)
        _ = queue.receive(frame(.audio, 5), at: 0)  // media over its limit: frame 1 goes
        _ = queue.receive(item(6), at: 0)  // third control item: reads withheld
        #expect(queue.readRequested() == .withhold)
        var got: [UInt8] = []
        while case let .item(i, _) = queue.next(for: waiter, at: 0) {
            if case let .message(.frame(f)) = i { got.append(f.payload[0]) } else { got.append(i.undecodableBytes?.first ?? 0) }
        }
        #expect(got == [2, 3, 4, 5, 6])
        #expect(queue.statistics.mediaOverflowDropped == 1)
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

@Suite struct InboundDropCountTests {
    func stats(_ stale: UInt64, _ overflow: UInt64) -> InboundStatistics {
        var s = InboundStatistics()
        s.staleAudioDropped = stale
        s.mediaOverflowDropped = overflow
        return s
    }

    @Test func dropsSinceAnEarlierSnapshotOfTheSameConnection() {
        #expect(stats(12, 5).drops(since: stats(10, 5)) == (2, 0))
        #expect(stats(10, 5).drops(since: stats(10, 5)) == (0, 0))
    }

    /// A replaced connection counts from zero: what it counted is all new, never an underflow.
    @Test func aNewConnectionsCountersAreAllNew() {
        #expect(stats(3, 0).drops(since: stats(40, 7)) == (3, 0))
        #expect(stats(0, 9).drops(since: stats(40, 7)) == (0, 2))
        #expect(stats(0, 0).drops(since: stats(UInt64.max, UInt64.max)) == (0, 0))
    }
}
