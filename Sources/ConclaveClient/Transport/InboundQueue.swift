import NIOCore

/// The inbound side of a relay connection as a value-type state machine (STYLE.md §1):
/// items waiting for a consumer, consumers waiting for items, and whether the socket may
/// be read.
///
/// **Bounded memory through backpressure, not dropping.** Nothing is ever dropped. When
/// ``highWatermark`` items are buffered the queue withholds the channel's `read()` calls,
/// so the kernel's receive buffer fills, TCP's window closes and the relay sees a slow
/// consumer (which it may disconnect as `too_slow`). Reading resumes when the consumer has
/// drained the buffer to ``lowWatermark``. At most `highWatermark` items plus what one read
/// burst already in flight decodes (a few 64 KiB socket reads) are held.
/// ``setPausedByUser(_:)`` withholds reads the same way, regardless of the buffer.
///
/// `Waiter` identifies a pending consumer; the shell resumes it. The queue is not
/// thread-safe: its owner confines it to the channel's event loop.
struct InboundQueue<Waiter: AnyObject> {
    /// Buffered items are at most this many before reads are withheld (at least 1).
    let highWatermark: Int
    /// Reads resume when the buffer has drained to this many (below ``highWatermark``).
    let lowWatermark: Int

    private var items = CircularBuffer<RelayInbound>()
    private var waiters = CircularBuffer<Waiter>()
    /// The final `.closed` item has been accepted; later items are ignored.
    private(set) var isFinished = false
    /// The buffer reached ``highWatermark`` and has not yet drained to ``lowWatermark``.
    private var isOverWatermark = false
    private(set) var isPausedByUser = false
    /// A `read()` arrived while reading was not allowed and has not been issued since.
    private(set) var hasWithheldRead = false

    init(highWatermark: Int, lowWatermark: Int) {
        precondition(highWatermark >= 1 && lowWatermark >= 0 && lowWatermark < highWatermark,
                     "inbound watermarks need 0 <= low < high")
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
    }

    /// Items received and not yet taken.
    var bufferedCount: Int { items.count }

    /// Consumers waiting for an item.
    var waiterCount: Int { waiters.count }

    /// Whether a `read()` may go to the socket now.
    var mayRead: Bool { !isPausedByUser && !isOverWatermark }

    // MARK: Producer side (the channel)

    enum ReceiveAction {
        /// Hand the item straight to this waiting consumer.
        case resume(Waiter, RelayInbound)
        /// The item was buffered.
        case buffered
        /// The queue is finished; the item was discarded.
        case ignored
    }

    /// Accepts one item (a message or an undecodable message; not `.closed`).
    mutating func receive(_ item: RelayInbound) -> ReceiveAction {
        precondition(!item.isClosed, "use finish(_:) for the closing item")
        guard !isFinished else { return .ignored }
        if let waiter = waiters.popFirst() {
            return .resume(waiter, item)
        }
        items.append(item)
        if items.count >= highWatermark { isOverWatermark = true }
        return .buffered
    }

    /// Accepts the final `.closed` item. Returns the waiters to resume: the first gets the
    /// item, any others `nil` (the sequence has ended for them). Idempotent.
    mutating func finish(_ closed: RelayInbound) -> [(Waiter, RelayInbound?)] {
        precondition(closed.isClosed, "finish(_:) takes the .closed item")
        guard !isFinished else { return [] }
        isFinished = true
        hasWithheldRead = false
        guard let first = waiters.popFirst() else {
            items.append(closed)
            return []
        }
        var resumptions: [(Waiter, RelayInbound?)] = [(first, closed)]
        while let other = waiters.popFirst() { resumptions.append((other, nil)) }
        return resumptions
    }

    // MARK: Consumer side

    enum NextAction: Equatable {
        /// Return this item; when `resumeReading` is true, issue the withheld `read()`.
        case item(RelayInbound, resumeReading: Bool)
        /// The sequence has ended (`.closed` was already taken).
        case end
        /// Nothing yet: the waiter was queued and will be resumed by ``receive(_:)`` or ``finish(_:)``.
        case wait
    }

    /// A consumer asks for the next item.
    mutating func next(for waiter: Waiter) -> NextAction {
        if let item = items.popFirst() {
            if isOverWatermark, items.count <= lowWatermark { isOverWatermark = false }
            return .item(item, resumeReading: takeWithheldReadIfAllowed())
        }
        if isFinished { return .end }
        waiters.append(waiter)
        return .wait
    }

    /// Removes a waiting consumer (timeout or cancellation). Returns false if it was not
    /// waiting, i.e. it has already been resumed.
    mutating func removeWaiter(_ waiter: Waiter) -> Bool {
        guard let index = waiters.firstIndex(where: { $0 === waiter }) else { return false }
        waiters.remove(at: index)
        return true
    }

    // MARK: Read gate

    enum ReadDecision: Equatable {
        case forward
        case withhold
    }

    /// The channel wants to read from the socket.
    mutating func readRequested() -> ReadDecision {
        if mayRead || isFinished { return .forward }
        hasWithheldRead = true
        return .withhold
    }

    /// Pauses or resumes reading on the user's request. Returns true when a withheld read
    /// should be issued now.
    mutating func setPausedByUser(_ paused: Bool) -> Bool {
        isPausedByUser = paused
        return takeWithheldReadIfAllowed()
    }

    private mutating func takeWithheldReadIfAllowed() -> Bool {
        guard hasWithheldRead, mayRead else { return false }
        hasWithheldRead = false
        return true
    }
}
