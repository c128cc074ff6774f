import ConclaveCrypto

/// The datagrams of the UDP media path (protocol section 6).
///
/// Client → relay (`MEDIA`, `KEEPALIVE`):
///
///     kind u8 | session_id u32 | sequence u64 | body | tag bytes[16]
///
/// `body` is one whole `FRAME` message exactly as on the WebSocket (5.6) for `MEDIA`, and
/// empty for `KEEPALIVE`. `tag` is the hop tag (``HopAuthenticator``) over every byte
/// before it, with direction 0 and `sequence` as the nonce.
///
/// Relay → client: either a `FRAME` message exactly as on the WebSocket (its first byte is
/// the version, `0x01`), or a `KEEPALIVE_ACK`:
///
///     kind u8 (0x12) | session_id u32 | sequence u64 | echo u64 | tag bytes[16]
///
/// with direction 1. Forwarded frames carry no hop tag: SFrame authenticates each one end
/// to end, and the receiver's replay window rejects a replay (6.4).
public enum MediaDatagram {
    public enum Kind: UInt8, Sendable {
        case media = 0x10
        case keepalive = 0x11
        case keepaliveAck = 0x12
        /// Relay → client: prove that you receive at this address (6.4 path validation).
        case pathChallenge = 0x13
        /// Client → relay: the challenge's token, from the address being validated.
        case pathResponse = 0x14
    }

    /// `kind`, `session_id`, `sequence`.
    public static let headerLength = 13
    public static let tagLength = HopAuthenticator.tagByteCount
    /// The largest body: a `FRAME` with a full audio payload (8 + 1 500).
    public static let maximumBodyLength = MessageLimits.frameHeaderLength + FrameKind.audio.payloadLimit
    /// The largest client → relay datagram (13 + 1 508 + 16 = 1 537 bytes).
    public static let maximumLength = headerLength + maximumBodyLength + tagLength
    /// `KEEPALIVE`: header and tag.
    public static let keepaliveLength = headerLength + tagLength
    /// `KEEPALIVE_ACK`: header, echo and tag (37 bytes).
    public static let keepaliveAckLength = headerLength + 8 + tagLength
    /// The first byte of a forwarded `FRAME` message (its version).
    public static let forwardedFrameFirstByte = ProtocolVersion.current

    /// The routing header of a client → relay datagram.
    public struct Header: Sendable, Equatable {
        public var kind: Kind
        public var sessionID: UInt32
        public var sequence: UInt64

        public init(kind: Kind, sessionID: UInt32, sequence: UInt64) {
            self.kind = kind
            self.sessionID = sessionID
            self.sequence = sequence
        }
    }

    /// Parses a client → relay datagram's header and checks its length and kind; the tag is
    /// checked separately (``verify(_:header:authenticator:)``). Returns the body's offsets.
    public static func parse(_ datagram: UnsafeRawBufferPointer) throws(MediaDatagramError) -> (header: Header, body: Range<Int>) {
        let n = datagram.count
        guard n <= maximumLength else { throw .tooLong(length: n, limit: maximumLength) }
        guard n >= keepaliveLength else { throw .tooShort(length: n) }
        guard let kind = Kind(rawValue: datagram[0]), kind != .keepaliveAck, kind != .pathChallenge else { throw .unknownKind(datagram[0]) }
        let session = UInt32(bigEndian: datagram.loadUnaligned(fromByteOffset: 1, as: UInt32.self))
        guard session != 0 else { throw .zeroSession }
        let sequence = UInt64(bigEndian: datagram.loadUnaligned(fromByteOffset: 5, as: UInt64.self))
        guard sequence != 0 else { throw .zeroSequence }
        let body = headerLength..<n - tagLength
        switch kind {
        case .keepalive where !body.isEmpty: throw .unexpectedBody(length: body.count)
        case .pathResponse where body.count != 8: throw .unexpectedBody(length: body.count)
        case .media where body.isEmpty: throw .emptyBody
        default: break
        }
        return (Header(kind: kind, sessionID: session, sequence: sequence), body)
    }

    /// Whether the datagram's tag verifies under the session's hop key (direction 0).
    public static func verify(_ datagram: UnsafeRawBufferPointer, header: Header, authenticator: HopAuthenticator) -> Bool {
        let split = datagram.count - tagLength
        return authenticator.verify(
            UnsafeRawBufferPointer(rebasing: datagram[..<split]), direction: .clientToRelay,
            sequence: header.sequence, tag: UnsafeRawBufferPointer(rebasing: datagram[split...]))
    }

    /// Appends a sealed client → relay datagram to `out`.
    public static func seal(_ header: Header, body: UnsafeRawBufferPointer, authenticator: HopAuthenticator, into out: inout [UInt8]) {
        precondition(body.count <= maximumBodyLength, "media datagram body over \(maximumBodyLength) bytes")
        let start = out.count
        out.append(header.kind.rawValue)
        appendBigEndian(header.sessionID, to: &out)
        appendBigEndian(header.sequence, to: &out)
        out.append(contentsOf: body)
        out.append(contentsOf: repeatElement(0, count: tagLength))
        out.withUnsafeMutableBytes { raw in
            let end = raw.count - tagLength
            authenticator.tag(
                UnsafeRawBufferPointer(rebasing: raw[start..<end]), direction: .clientToRelay,
                sequence: header.sequence, into: UnsafeMutableRawBufferPointer(rebasing: raw[end...]))
        }
    }

    /// A sealed `KEEPALIVE_ACK` (relay → client) answering the keepalive `echo`.
    public static func keepaliveAck(sessionID: UInt32, sequence: UInt64, echo: UInt64, authenticator: HopAuthenticator) -> [UInt8] {
        relayDatagram(.keepaliveAck, sessionID: sessionID, sequence: sequence, value: echo, authenticator: authenticator)
    }

    /// A sealed `PATH_CHALLENGE` (relay → client, 37 bytes like `KEEPALIVE_ACK`, with a random
    /// `token` where the ack has `echo`).
    public static func pathChallenge(sessionID: UInt32, sequence: UInt64, token: UInt64, authenticator: HopAuthenticator) -> [UInt8] {
        relayDatagram(.pathChallenge, sessionID: sessionID, sequence: sequence, value: token, authenticator: authenticator)
    }

    /// The body of the `PATH_RESPONSE` that answers a challenge's `token` (8 bytes, big-endian).
    public static func pathResponseBody(token: UInt64) -> [UInt8] {
        withUnsafeBytes(of: token.bigEndian) { Array($0) }
    }

    /// Opens a `PATH_CHALLENGE`: its `(sequence, token)` when it is one for `sessionID` and
    /// its tag verifies, nil otherwise.
    public static func openPathChallenge(
        _ datagram: UnsafeRawBufferPointer, sessionID: UInt32,
        authenticator: HopAuthenticator
    ) -> (sequence: UInt64, token: UInt64)? {
        openRelayDatagram(.pathChallenge, datagram, sessionID: sessionID, authenticator: authenticator).map { ($0.sequence, $0.value) }
    }

    /// `kind | session_id | sequence | value (u64) | tag`, direction 1.
    static func relayDatagram(_ kind: Kind, sessionID: UInt32, sequence: UInt64, value: UInt64, authenticator: HopAuthenticator) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(keepaliveAckLength)
        out.append(kind.rawValue)
        appendBigEndian(sessionID, to: &out)
        appendBigEndian(sequence, to: &out)
        appendBigEndian(value, to: &out)
        out.append(contentsOf: repeatElement(0, count: tagLength))
        out.withUnsafeMutableBytes { raw in
            authenticator.tag(
                UnsafeRawBufferPointer(rebasing: raw[..<(keepaliveAckLength - tagLength)]), direction: .relayToClient,
                sequence: sequence, into: UnsafeMutableRawBufferPointer(rebasing: raw[(keepaliveAckLength - tagLength)...]))
        }
        return out
    }

    /// Opens a `KEEPALIVE_ACK`: its `(sequence, echo)` when it is one for `sessionID` and its
    /// tag verifies, nil otherwise.
    public static func openKeepaliveAck(
        _ datagram: UnsafeRawBufferPointer, sessionID: UInt32,
        authenticator: HopAuthenticator
    ) -> (sequence: UInt64, echo: UInt64)? {
        openRelayDatagram(.keepaliveAck, datagram, sessionID: sessionID, authenticator: authenticator).map { ($0.sequence, $0.value) }
    }

    static func openRelayDatagram(
        _ kind: Kind, _ datagram: UnsafeRawBufferPointer, sessionID: UInt32,
        authenticator: HopAuthenticator
    ) -> (sequence: UInt64, value: UInt64)? {
        guard datagram.count == keepaliveAckLength, datagram[0] == kind.rawValue,
            UInt32(bigEndian: datagram.loadUnaligned(fromByteOffset: 1, as: UInt32.self)) == sessionID
        else { return nil }
        let sequence = UInt64(bigEndian: datagram.loadUnaligned(fromByteOffset: 5, as: UInt64.self))
        let echo = UInt64(bigEndian: datagram.loadUnaligned(fromByteOffset: 13, as: UInt64.self))
        let split = keepaliveAckLength - tagLength
        guard
            authenticator.verify(
                UnsafeRawBufferPointer(rebasing: datagram[..<split]), direction: .relayToClient,
                sequence: sequence, tag: UnsafeRawBufferPointer(rebasing: datagram[split...]))
        else { return nil }
        return (sequence, echo)
    }

    private static func appendBigEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }
}

/// Why a client → relay datagram was dropped before its tag was checked.
public enum MediaDatagramError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooShort(length: Int)
    case tooLong(length: Int, limit: Int)
    case unknownKind(UInt8)
    case zeroSession
    case zeroSequence
    case unexpectedBody(length: Int)
    case emptyBody

    public var description: String {
        switch self {
        case let .tooShort(n): "datagram of \(n) bytes is shorter than the \(MediaDatagram.keepaliveLength)-byte minimum"
        case let .tooLong(n, limit): "datagram of \(n) bytes exceeds the \(limit)-byte limit"
        case let .unknownKind(k): "unknown datagram kind 0x\(String(k, radix: 16))"
        case .zeroSession: "session_id 0 is reserved"
        case .zeroSequence: "sequence 0 is reserved"
        case let .unexpectedBody(n): "KEEPALIVE carries a \(n)-byte body; it must be empty"
        case .emptyBody: "MEDIA datagram without a FRAME"
        }
    }

    /// The relay's drop-reason label (metrics).
    public var metricName: String {
        switch self {
        case .unknownKind: "unknown_kind"
        case .tooShort, .tooLong, .unexpectedBody, .emptyBody, .zeroSession, .zeroSequence: "malformed"
        }
    }
}
