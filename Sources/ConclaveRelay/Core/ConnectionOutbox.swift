import Synchronization
import NIOCore
import NIOWebSocket
import ConclaveProtocol

/// The outbound side of one client connection, with a bounded queue.
///
/// Any thread may call ``send(_:class:)``; the work runs on the connection's event loop,
/// where `queuedBytes` (bytes handed to NIO and not yet written to the socket) is kept.
/// Audio and screen frames are dropped, and counted, once the queue holds more than
/// `mediaLimit` bytes. Anything else (control, chat, key packages) is never dropped: if
/// it would take the queue past `hardLimit` less ``closingReserve``, the client is
/// disconnected with `too_slow` so it can rejoin and rekey cleanly: the reserve keeps room
/// for that `ERROR` and the close frame within the limit. Memory per connection is
/// therefore bounded by `hardLimit` plus one message.
///
/// A closing connection is closed once what is queued (the `ERROR` and close frame last)
/// has been written, or when the socket has made no progress for ``stallTimeout``: a
/// client that reads slowly still gets every whole frame, then its `ERROR` and close
/// frame; one that stopped reading is cut off.
final class ConnectionOutbox: @unchecked Sendable {
    // @unchecked: `queuedBytes` and `closing` are only touched on `channel.eventLoop`.
    enum TrafficClass { case media, reliable }

    let id: ConnectionID
    let channel: Channel
    let address: String
    /// The room this connection joined or created (set and cleared under the registry lock;
    /// read by the frame path without it).
    private let roomBox = Mutex<RoomCell?>(nil)
    var room: RoomCell? {
        get { roomBox.withLock { $0 } }
        set { roomBox.withLock { $0 = newValue } }
    }
    private let metrics: RelayMetrics
    private let mediaLimit: Int
    private let hardLimit: Int
    private var queuedBytes = 0
    private var closing = false
    /// Writes completed so far (the stall watchdog's measure of progress).
    private var writesCompleted: UInt64 = 0
    private var closingStarted: NIODeadline?

    /// Room kept below `hardLimit` for the closing `ERROR` and close frame.
    static let closingReserve = 512
    /// A closing connection whose socket accepts nothing for this long is closed. (The
    /// kernel reports a full socket writable again only once a third of its buffer has
    /// drained, so a slow reader can show no progress for a second or two.)
    static let stallTimeout: TimeAmount = .seconds(5)
    /// A closing connection is closed after this long whatever its progress.
    static let closingLimit: TimeAmount = .seconds(30)

    init(id: ConnectionID, channel: Channel, address: String, metrics: RelayMetrics, mediaLimit: Int, hardLimit: Int) {
        self.id = id
        self.channel = channel
        self.address = address
        self.metrics = metrics
        self.mediaLimit = mediaLimit
        self.hardLimit = hardLimit
    }

    /// Queues one whole Conclave message (already encoded) as a binary WebSocket message.
    func send(_ bytes: ByteBuffer, class trafficClass: TrafficClass) {
        if channel.eventLoop.inEventLoop {
            sendOnLoop(bytes, trafficClass)
        } else {
            channel.eventLoop.execute { self.sendOnLoop(bytes, trafficClass) }
        }
    }

    func send(_ message: RelayMessage) {
        send(channel.allocator.buffer(bytes: message.encoded()), class: .reliable)
    }

    /// Sends a fatal `ERROR`, then a WebSocket close, then closes the connection.
    func close(with error: ErrorMessage) {
        if channel.eventLoop.inEventLoop {
            closeOnLoop(error)
        } else {
            channel.eventLoop.execute { self.closeOnLoop(error) }
        }
    }

    /// Closes after what is queued, with a normal WebSocket close (after `leave`).
    func closeNormally() {
        channel.eventLoop.execute {
            guard !self.closing else { return }
            self.closing = true
            var closeData = self.channel.allocator.buffer(capacity: 2)
            closeData.write(webSocketErrorCode: .normalClosure)
            let channel = self.channel
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: closeData)).whenComplete { _ in
                channel.close(promise: nil)
            }
            self.watchClosing()
        }
    }

    private func sendOnLoop(_ bytes: ByteBuffer, _ trafficClass: TrafficClass) {
        guard !closing else { return }
        let size = bytes.readableBytes
        if trafficClass == .media, queuedBytes + size > mediaLimit {
            metrics.outboundMediaDropped.increment()
            return
        }
        if queuedBytes + size > hardLimit - Self.closingReserve {
            metrics.slowConsumerDisconnects.increment()
            metrics.limitHit("outbound_queue")
            closeOnLoop(
                ErrorMessage(
                    code: .tooSlow, isFatal: true,
                    message: "the client did not read fast enough; rejoin to resynchronise"))
            return
        }
        queuedBytes += size
        metrics.noteQueued(queuedBytes)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { _ in
            self.queuedBytes -= size
            self.writesCompleted &+= 1
        }
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, data: bytes), promise: promise)
    }

    private func closeOnLoop(_ error: ErrorMessage) {
        guard !closing else { return }
        closing = true
        let payload = channel.allocator.buffer(bytes: RelayMessage.error(error).encoded())
        // Counted as sent once it is written to the socket, not when queued.
        let metrics = self.metrics
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenSuccess { metrics.errorSent(error.code) }
        channel.write(WebSocketFrame(fin: true, opcode: .binary, data: payload), promise: written)
        var closeData = channel.allocator.buffer(capacity: 2)
        closeData.write(webSocketErrorCode: error.code == .internal ? .unexpectedServerError : .policyViolation)
        let channel = self.channel
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: closeData)).whenComplete { _ in
            channel.close(promise: nil)
        }
        watchClosing()
    }

    /// A client that never reads must not hold a closing connection open: it is closed
    /// when its socket has accepted nothing for ``stallTimeout``, and after
    /// ``closingLimit`` in any case. One that reads, however slowly, gets what was queued.
    private func watchClosing() {
        closingStarted = NIODeadline.now()
        scheduleClosingCheck(seen: writesCompleted)
    }

    private func scheduleClosingCheck(seen: UInt64) {
        channel.eventLoop.scheduleTask(in: Self.stallTimeout) {
            guard self.channel.isActive else { return }
            let overdue = NIODeadline.now() - (self.closingStarted ?? .now()) >= Self.closingLimit
            if self.writesCompleted == seen || overdue {
                self.channel.close(promise: nil)
            } else {
                self.scheduleClosingCheck(seen: self.writesCompleted)
            }
        }
    }

    /// True once a close has started.
    var isClosing: Bool {
        channel.eventLoop.preconditionInEventLoop()
        return closing
    }
}
