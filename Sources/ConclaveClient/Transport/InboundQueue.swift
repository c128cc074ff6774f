import ConclaveProtocol
import NIOCore

/// What a connection's inbound queue has dropped and how deep it got (see
/// ``RelayConnection/inboundStatistics()``).
public struct InboundStatistics: Sendable, Equatable {
    /// Audio frames dropped because they waited longer than
    /// ``RelayConnection/Options/staleAudioAfter`` before the consumer asked for them.
    public var staleAudioDropped: UInt64 = 0
    /// Media frames (audio, and screen frames that came by UDP) dropped, oldest first,
    /// because ``RelayConnection/Options/maximumQueuedMedia`` were already waiting.
    public var mediaOverflowDropped: UInt64 = 0
    /// The most control items (everything but media) ever waiting at once. Bounded by
    /// backpressure: the high watermark plus the rest of one socket read.
    public var peakQueuedControl = 0
    /// The most media frames ever waiting at once (at most the media limit).
    public var peakQueuedMedia = 0

    public init() {}

    /// Media frames dropped for either reason.
    public var mediaDropped: UInt64 { staleAudioDropped + mediaOverflowDropped }
}

/// The inbound side of a relay connection as a value-type state machine (STYLE.md §1):
/// items waiting for a consumer, consumers waiting for items, and whether the socket may
/// be read.
///
/// Items come out in the order they arrived, in two classes with different policies:
/// - **Control** (every relay message except media frames: keys, rosters, chat, events,
///   errors, undecodable messages, the final `.closed`) is **never dropped**. Memory is
///   bounded by backpressure: when ``highWatermark`` control items wait, the queue
///   withholds the channel's `read()` calls, so the kernel's receive buffer fills, TCP's
///   window closes and the relay sees a slow consumer (which it may disconnect as
///   `too_slow`). Reading resumes when the consumer has drained them to ``lowWatermark``.
/// - **Media** (audio frames from either path, and screen frames that came by UDP, which
///   is lossy anyway and cannot be slowed down) is dropped rather than allowed to age:
///   at most ``mediaLimit`` wait (on overflow the oldest goes), and an audio frame that
///   waited longer than ``staleAudioNanos`` is dropped when the consumer gets to it, since
///   playing it would only add delay. Every drop is counted in ``statistics``. Media does
///   not hold back reading: a client that falls behind keeps reading the socket and
///   skips old audio instead of pushing the backlog back to the relay.
///
/// ``setPausedByUser(_:)`` withholds reads regardless of the buffer. `Waiter` identifies a
/// pending consumer; the shell resumes it. Times are monotonic nanoseconds passed in by
/// the caller. The queue is not thread-safe: its owner confines it to the event loop.
struct InboundQueue<Waiter: AnyObject> {
    /// Control items are at most this many before reads are withheld (at least 1).
    let highWatermark: Int
    /// Reads resume when control items have drained to this many (below ``highWatermark``).
    let lowWatermark: Int
    /// Media frames waiting at most (at least 1).
    let mediaLimit: Int
    /// An audio frame older than this when taken is dropped.
    let staleAudioNanos: UInt64
    /// False: media is control too (``InboundMediaPolicy/keepAll``).
    let mediaIsDroppable: Bool

    private struct Entry {
        let item: RelayInbound
        let sequence: UInt64
        let arrived: UInt64
        let isAudio: Bool
    }

    private var control = CircularBuffer<Entry>()
    private var media = CircularBuffer<Entry>()
    private var nextSequence: UInt64 = 0
    private var waiters = CircularBuffer<Waiter>()
    private(set) var statistics = InboundStatistics()
    /// The final `.closed` item has been accepted; later items are ignored.
    private(set) var isFinished = false
    /// Control items reached ``highWatermark`` and have not yet drained to ``lowWatermark``.
    private var isOverWatermark = false
    private(set) var isPausedByUser = false
    /// A `read()` arrived while reading was not allowed and has not been issued since.
    private(set) var hasWithheldRead = false

    init(highWatermark: Int, lowWatermark: Int, mediaLimit: Int = 1_024, staleAudioNanos: UInt64 = 200_000_000, mediaIsDroppable: Bool = true) {
        precondition(
            highWatermark >= 1 && lowWatermark >= 0 && lowWatermark < highWatermark,
            "inbound watermarks need 0 <= low < high")
        precondition(mediaLimit >= 1, "the media limit must be positive")
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
        self.mediaLimit = mediaLimit
        self.staleAudioNanos = staleAudioNanos
        self.mediaIsDroppable = mediaIsDroppable
    }

    /// Items received and not yet taken (control and media; stale audio not yet dropped
    /// included).
    var bufferedCount: Int { control.count + media.count }

    /// Consumers waiting for an item.
    var waiterCount: Int { waiters.count }

    /// A consumer waits and nothing is queued: an item arriving now would go straight to it.
    var isIdleWithWaiter: Bool { !waiters.isEmpty && control.isEmpty && media.isEmpty && !isFinished }

    /// Whether a `read()` may go to the socket now.
    var mayRead: Bool { !isPausedByUser && !isOverWatermark }

    /// Whether `item` is media, which may be dropped: an audio frame, or a screen frame that
    /// came by the UDP media path.
    static func isMedia(_ item: RelayInbound, viaMediaPath: Bool) -> (media: Bool, audio: Bool) {
        guard case let .message(.frame(frame)) = item else { return (false, false) }
        switch frame.header.kind {
        case .audio: return (true, true)
        case .screen: return (viaMediaPath, false)
        default: return (false, false)
        }
    }

    // MARK: Producer side (the channel)

    enum ReceiveAction {
        /// Hand the item straight to this waiting consumer.
        case resume(Waiter, RelayInbound)
        /// The item was buffered (possibly dropping the oldest media frame).
        case buffered
        /// The queue is finished; the item was discarded.
        case ignored
    }

    /// Accepts one item (a message or an undecodable message; not `.closed`) that arrived
    /// at `now`, over the WebSocket or (`viaMediaPath`) by UDP.
    mutating func receive(_ item: RelayInbound, at now: UInt64, viaMediaPath: Bool = false) -> ReceiveAction {
        precondition(!item.isClosed, "use finish(_:) for the closing item")
        guard !isFinished else { return .ignored }
        if let waiter = waiters.popFirst() {
            return .resume(waiter, item)
        }
        let kind = mediaIsDroppable ? Self.isMedia(item, viaMediaPath: viaMediaPath) : (media: false, audio: false)
        let entry = Entry(item: item, sequence: nextSequence, arrived: now, isAudio: kind.audio)
        nextSequence &+= 1
        if kind.media {
            if media.count >= mediaLimit {
                media.removeFirst()
                statistics.mediaOverflowDropped += 1
            }
            media.append(entry)
            statistics.peakQueuedMedia = max(statistics.peakQueuedMedia, media.count)
        } else {
            control.append(entry)
            statistics.peakQueuedControl = max(statistics.peakQueuedControl, control.count)
            if control.count >= highWatermark { isOverWatermark = true }
        }
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
            control.append(Entry(item: closed, sequence: nextSequence, arrived: 0, isAudio: false))
            nextSequence &+= 1
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
        /// Nothing yet: the waiter was queued and will be resumed by ``receive(_:at:viaMediaPath:)`` or ``finish(_:)``.
        case wait
    }

    /// A consumer asks for the next item at `now`. Audio that has gone stale is dropped
    /// (and counted) on the way.
    mutating func next(for waiter: Waiter, at now: UInt64) -> NextAction {
        while let first = media.first, first.isAudio, now >= first.arrived, now - first.arrived > staleAudioNanos {
            media.removeFirst()
            statistics.staleAudioDropped += 1
        }
        let takeMedia: Bool
        switch (control.first, media.first) {
        case let (c?, m?): takeMedia = m.sequence < c.sequence
        case (nil, _?): takeMedia = true
        case (_?, nil): takeMedia = false
        case (nil, nil):
            if isFinished { return .end }
            waiters.append(waiter)
            return .wait
        }
        if takeMedia {
            return .item(media.removeFirst().item, resumeReading: false)
        }
        let entry = control.removeFirst()
        if isOverWatermark, control.count <= lowWatermark { isOverWatermark = false }
        return .item(entry.item, resumeReading: takeWithheldReadIfAllowed())
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

extension InboundStatistics {
    /// Media dropped since `earlier`, a snapshot of the same counters. A counter below its
    /// earlier value belongs to a new connection (a redirect or a failover replaced the
    /// old one), which counts from zero: all of it is new.
    public func drops(since earlier: InboundStatistics) -> (stale: UInt64, overflow: UInt64) {
        (
            staleAudioDropped >= earlier.staleAudioDropped ? staleAudioDropped - earlier.staleAudioDropped : staleAudioDropped,
            mediaOverflowDropped >= earlier.mediaOverflowDropped ? mediaOverflowDropped - earlier.mediaOverflowDropped : mediaOverflowDropped
        )
    }
}
