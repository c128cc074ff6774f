import NIOCore
import ConclaveCrypto
import ConclaveProtocol

/// One admitted participant's UDP media session (protocol 6.2): its hop key, the replay
/// window over its datagram sequence numbers, and the address learned from its last
/// authenticated datagram.
///
/// Created when the relay admits the connection, dropped when it leaves the room. The
/// mutable fields are guarded by the lock of its ``room``, hence `@unchecked Sendable`;
/// the immutable ones (`id`, `connection`, `room`, `authenticator`) may be read anywhere.
final class MediaSession: @unchecked Sendable {
    let id: UInt32
    let connection: ConnectionID
    /// The room its connection was admitted to (a connection joins one room in its life).
    let room: RoomCell
    /// False once dropped (the member left, or the room closed).
    var isOpen = true
    let outbox: ConnectionOutbox
    let authenticator: HopAuthenticator
    let hopKey: SecretKey

    var window = ReplayWindow()
    /// The validated address (6.4): the relay sends to it only after the client answered a
    /// `PATH_CHALLENGE` there (nil until then).
    var address: MediaAddress?
    /// The address being validated, its token and when the challenge left.
    var pendingPath: (address: MediaAddress, token: UInt64, sentAt: RelayInstant)?
    /// When the last authenticated datagram arrived.
    var lastHeard = RelayInstant.origin
    /// The relay's own `KEEPALIVE_ACK` sequence numbers (direction 1).
    var ackSequence: UInt64 = 0
    /// Frame and byte rates, as on the WebSocket (`max-frames-per-second`, `max-bytes-per-second`).
    var frames: TokenBucket
    var bytes: TokenBucket

    init(
        id: UInt32, connection: ConnectionID, room: RoomCell, outbox: ConnectionOutbox, hopKey: SecretKey,
        configuration: RelayConfiguration, now: RelayMillis
    ) throws {
        self.id = id
        self.connection = connection
        self.room = room
        self.outbox = outbox
        self.hopKey = hopKey
        self.authenticator = try HopAuthenticator(key: hopKey)
        frames = TokenBucket(ratePerSecond: UInt64(configuration.maxFramesPerSecond), burst: UInt64(2 * configuration.maxFramesPerSecond), now: now)
        bytes = TokenBucket(ratePerSecond: UInt64(configuration.maxBytesPerSecond), burst: UInt64(2 * configuration.maxBytesPerSecond), now: now)
    }

    /// The address frames for this participant go to by UDP, or nil when they fall back to
    /// its WebSocket: nil until a path is validated, and nil while no authenticated datagram
    /// has arrived since `heardSince` (now less the media path timeout, in the relay clock's
    /// nanoseconds; one subtraction per frame rather than a `Duration` per recipient).
    @inline(__always)
    func liveAddress(heardSince: UInt64) -> MediaAddress? {
        lastHeard.nanoseconds >= heardSince ? address : nil
    }
}

/// Where one frame goes: UDP addresses and WebSocket outboxes. A caller keeps one per
/// event loop and reuses it, so routing a frame allocates nothing once the arrays have
/// grown to the largest room.
struct MediaTargets {
    var udp: [MediaAddress] = []
    var websocket: [ConnectionOutbox] = []

    init(capacity: Int = 16) {
        udp.reserveCapacity(capacity)
        websocket.reserveCapacity(capacity)
    }

    mutating func reset() {
        udp.removeAll(keepingCapacity: true)
        websocket.removeAll(keepingCapacity: true)
    }
}

/// What the relay does with one client → relay datagram.
enum MediaInbound {
    /// Forward `body` (a `FRAME` message, these byte offsets of the datagram) to the targets.
    case forward(body: Range<Int>)
    /// Answer the datagram's source with this (a `KEEPALIVE_ACK`, or a `PATH_CHALLENGE` to
    /// an address not yet validated).
    case acknowledge([UInt8])
    /// Dropped and counted (the reason's metric label).
    case dropped(String)
    /// Dropped; the sender's WebSocket gets this notice (e.g. screen sharing not allowed).
    case notify(ConnectionOutbox, ErrorMessage)
}
