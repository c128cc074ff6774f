/// `ERROR` (`0x88`): `code: u16`, `request_id: u16`, `fatal: u8`, `retry_after_ms: u32`,
/// `message: text8<200>`.
///
/// Decoding rejects as `malformed`: a code that is not a wire code (1–24; client-only
/// codes ≥ 1000 never travel), `fatal` other than 0/1, a non-zero `retry_after_ms` with a
/// code other than `rate_limited`, a text over 200 bytes or not valid UTF-8.
///
/// `==` compares ``message`` as a `String` (Unicode canonical equivalence), so two messages
/// whose texts differ only in normalization compare equal; their encodings keep each text's
/// own bytes.
public struct ErrorMessage: Sendable, Hashable {
    public var code: ErrorCode
    /// The `request_id` of the command this answers, or 0.
    public var requestID: UInt16
    /// The relay closes the connection after sending this message.
    public var isFatal: Bool
    /// Only with ``ErrorCode/rateLimited``; otherwise 0.
    public var retryAfterMilliseconds: UInt32
    /// An English sentence for people, at most 200 UTF-8 bytes; never a secret, a name or a payload.
    public var message: String

    public init(code: ErrorCode, requestID: UInt16 = 0, isFatal: Bool, retryAfterMilliseconds: UInt32 = 0, message: String) {
        self.code = code
        self.requestID = requestID
        self.isFatal = isFatal
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.message = message
    }

    var bodyLength: Int { 10 + message.utf8.count }

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        let rawCode = try reader.readUInt16("code")
        guard let code = ErrorCode(rawValue: rawCode), code.isWireCode else {
            throw .invalidValue(field: "code", value: UInt64(rawCode))
        }
        self.code = code
        requestID = try reader.readUInt16("request_id")
        isFatal = try reader.readBool("fatal")
        retryAfterMilliseconds = try reader.readUInt32("retry_after_ms")
        guard retryAfterMilliseconds == 0 || code == .rateLimited else {
            throw .invalidValue(field: "retry_after_ms", value: UInt64(retryAfterMilliseconds))
        }
        let length = Int(try reader.readUInt8("message_length"))
        guard length <= MessageLimits.maximumErrorTextLength else {
            throw .lengthOverLimit(field: "message", length: length, limit: MessageLimits.maximumErrorTextLength)
        }
        let text = try reader.readSlice(count: length, field: "message")
        // String(decoding:) replaces ill-formed sequences with U+FFFD, so the bytes survive
        // unchanged exactly when they were valid UTF-8.
        let decoded = String(decoding: text, as: UTF8.self)
        guard decoded.utf8.elementsEqual(text) else { throw .invalidUTF8(field: "message") }
        message = decoded
    }

    func write(to writer: inout ByteWriter) {
        let text = message.utf8
        precondition(text.count <= MessageLimits.maximumErrorTextLength, "ERROR message over 200 UTF-8 bytes")
        writer.writeUInt16(code.rawValue)
        writer.writeUInt16(requestID)
        writer.writeUInt8(isFatal ? 1 : 0)
        writer.writeUInt32(retryAfterMilliseconds)
        writer.writeUInt8(UInt8(text.count))
        writer.writeBytes(text)
    }
}
