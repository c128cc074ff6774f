/// Why a message was rejected by a decoder. Every case maps to a wire ``ErrorCode``
/// through ``wireCode``: `too_large`, `unsupported_version`, or `malformed`.
///
/// Field names are those of section 5 (snake_case). Descriptions are one line and never
/// contain payload bytes.
public enum MessageDecodingError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The whole message is longer than ``MessageLimits/maximumMessageLength``.
    case messageTooLarge(length: Int, limit: Int)
    /// A `FRAME` payload is longer than its kind's limit (table 5.6).
    case payloadTooLarge(kind: FrameKind, length: Int, limit: Int)
    /// The preamble's `version` is not the negotiated one.
    case unsupportedVersion(UInt8)
    /// The `type` is reserved, or not sent in this direction.
    case unknownType(UInt8)
    /// The message ends inside `field` (or a required field is empty).
    case truncated(field: String)
    /// Bytes remain after the last field.
    case trailingBytes(count: Int)
    /// A length field is over its documented limit.
    case lengthOverLimit(field: String, length: Int, limit: Int)
    /// A field holds a value outside its documented set or range.
    case invalidValue(field: String, value: UInt64)
    /// A field that must be zero (or a flags field with reserved bits) is not.
    case reservedBitsSet(field: String, value: UInt64)
    /// A text field is not valid UTF-8.
    case invalidUTF8(field: String)

    /// The error the relay sends back for this failure (section 5.8).
    public var wireCode: ErrorCode {
        switch self {
        case .messageTooLarge, .payloadTooLarge: .tooLarge
        case .unsupportedVersion: .unsupportedVersion
        default: .malformed
        }
    }

    public var description: String {
        let detail: String
        switch self {
        case let .messageTooLarge(length, limit):
            detail = "message of \(length) bytes is over the limit of \(limit) bytes"
        case let .payloadTooLarge(kind, length, limit):
            detail = "\(kind.name) frame payload of \(length) bytes is over the limit of \(limit) bytes"
        case let .unsupportedVersion(version):
            detail = "protocol version \(version) is not the negotiated version \(ProtocolVersion.current)"
        case let .unknownType(type):
            detail = "message type 0x\(hex2(type)) is reserved or not valid in this direction"
        case let .truncated(field):
            detail = "message ends inside field '\(field)'"
        case let .trailingBytes(count):
            detail = "\(count) byte\(count == 1 ? "" : "s") left after the last field"
        case let .lengthOverLimit(field, length, limit):
            detail = "field '\(field)' has length \(length), over its limit of \(limit)"
        case let .invalidValue(field, value):
            detail = "field '\(field)' has invalid value \(value)"
        case let .reservedBitsSet(field, value):
            detail = "field '\(field)' has reserved bits set (value \(value))"
        case let .invalidUTF8(field):
            detail = "field '\(field)' is not valid UTF-8"
        }
        return "\(wireCode.name): \(detail)"
    }
}

private func hex2(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
}
