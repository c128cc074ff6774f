/// A room's 16-byte identifier, chosen at random by the relay (section 5.4).
///
/// Its text form, used in invites and logs, is URL-safe base64 without padding: exactly
/// 22 characters of `A–Z a–z 0–9 - _`, the last one carrying 2 bits (its 4 low bits zero),
/// so every room id has exactly one text form.
public struct RoomID: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    // Bytes 0–7 and 8–15, big-endian.
    private var high: UInt64
    private var low: UInt64

    /// Length of the binary form.
    public static let byteCount = 16
    /// Length of the text form.
    public static let textLength = 22
    /// All zero: the `room_id` a `CREATE_ROOM` signature covers.
    public static let zero = RoomID(high: 0, low: 0)

    private init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Creates a room id from exactly 16 bytes; `nil` for any other count.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        for (offset, byte) in bytes.enumerated() {
            if offset < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    /// Parses the 22-character text form.
    public init(base64URL text: some StringProtocol) throws(RoomIDParsingError) {
        let utf8 = Array(text.utf8.prefix(Self.textLength + 1))
        guard utf8.count == Self.textLength else { throw .wrongLength(text.utf8.count) }
        // 22 sextets = 132 bits: 128 bits of id, then 4 bits that must be zero.
        var high: UInt64 = 0, low: UInt64 = 0
        for (offset, character) in utf8.enumerated() {
            guard let sextet = Self.sextet(character) else { throw .invalidCharacter(offset: offset) }
            let value = UInt64(sextet)
            // Shift the 128-bit (high, low) accumulator left by 6 and add the sextet; the last
            // sextet only contributes its top 2 bits.
            if offset == Self.textLength - 1 {
                guard sextet & 0x0F == 0 else { throw .nonCanonical }
                high = high << 2 | low >> 62
                low = low << 2 | value >> 4
            } else {
                high = high << 6 | low >> 58
                low = low << 6 | value
            }
        }
        self.init(high: high, low: low)
    }

    public init?(_ description: String) {
        try? self.init(base64URL: description)
    }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(Self.byteCount)
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
        return result
    }

    /// The 22-character URL-safe base64 form without padding.
    public var base64URL: String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var output = [UInt8]()
        output.reserveCapacity(Self.textLength)
        let input = bytes + [0, 0]  // pad to 18 bytes = 6 groups of 3
        var index = 0
        while index < 18 {
            let group = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int(group >> UInt32(shift) & 0x3F)]) }
            index += 3
        }
        return String(decoding: output.prefix(Self.textLength), as: UTF8.self)
    }

    public var description: String { base64URL }

    private static func sextet(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }

    // MARK: Wire

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        guard reader.remainingCount >= Self.byteCount else { throw .truncated(field: "room_id") }
        let high = try reader.readUInt64("room_id")
        let low = try reader.readUInt64("room_id")
        self.init(high: high, low: low)
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt64(high)
        writer.writeUInt64(low)
    }
}

/// Why a string is not a ``RoomID``.
public enum RoomIDParsingError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The text is not 22 UTF-8 bytes long (the length found).
    case wrongLength(Int)
    /// The character at this offset is not in the URL-safe base64 alphabet.
    case invalidCharacter(offset: Int)
    /// The last character's 4 unused bits are not zero.
    case nonCanonical

    public var description: String {
        switch self {
        case let .wrongLength(length): "room id must be \(RoomID.textLength) characters, not \(length)"
        case let .invalidCharacter(offset): "room id has a character outside URL-safe base64 at offset \(offset)"
        case .nonCanonical: "room id's last character has non-zero unused bits"
        }
    }
}
