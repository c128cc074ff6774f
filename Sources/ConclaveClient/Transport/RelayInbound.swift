import ConclaveProtocol

/// One item received on a ``RelayConnection``, in arrival order.
///
/// Every binary WebSocket message becomes ``message(_:)`` when ``RelayMessage/decode(_:)-(UnsafeRawBufferPointer)``
/// accepts it and ``undecodable(bytes:error:)`` otherwise; a text message is always
/// ``undecodable(bytes:error:)`` with ``textMessageError`` (section 5.1: text is `malformed`).
/// ``closed(code:reason:)`` comes exactly once, last.
public enum RelayInbound: Sendable, Hashable {
    /// A relay → client message that decoded.
    case message(RelayMessage)
    /// A message that did not decode as a relay → client message, with its bytes
    /// (for a text message, its UTF-8 bytes). A client → relay message echoed back by a
    /// test server arrives here too; decode `bytes` with `ClientMessage.decode(_:)`.
    case undecodable(bytes: [UInt8], error: MessageDecodingError)
    /// The connection ended. `code` and `reason` come from the relay's WebSocket Close frame;
    /// both are `nil` when the connection ended without one (or the frame had no body), and
    /// `reason` is `nil` when the frame carried no text.
    case closed(code: UInt16?, reason: String?)

    /// The error attached to a text WebSocket message: WebSocket opcode 1 (text) where
    /// section 5.1 allows only opcode 2 (binary). Its wire code is `malformed`.
    public static let textMessageError = MessageDecodingError.invalidValue(field: "websocket_opcode", value: 1)

    /// The decoded message, if this is ``message(_:)``.
    public var message: RelayMessage? {
        if case let .message(message) = self { return message }
        return nil
    }

    /// The raw bytes, if this is ``undecodable(bytes:error:)``.
    public var undecodableBytes: [UInt8]? {
        if case let .undecodable(bytes, _) = self { return bytes }
        return nil
    }

    /// Whether this is ``closed(code:reason:)``.
    public var isClosed: Bool {
        if case .closed = self { return true }
        return false
    }
}

/// The inbound items of a ``RelayConnection`` as an `AsyncSequence`.
///
/// Ends (returns `nil`) after ``RelayInbound/closed(code:reason:)``, or when the iterating
/// task is cancelled; cancelling one iteration does not end the connection's inbound
/// queue, so a later iteration or ``RelayConnection/next(timeout:)`` continues where it
/// stopped. Meant for one consumer at a time; concurrent consumers each get different items.
public struct RelayInboundSequence: AsyncSequence, Sendable {
    public typealias Element = RelayInbound

    let connection: RelayConnection

    public struct AsyncIterator: AsyncIteratorProtocol {
        let connection: RelayConnection

        public mutating func next() async -> RelayInbound? {
            try? await connection.nextInbound(timeout: nil)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(connection: connection)
    }
}
