/// The SFrame header (RFC 9605 §4.3): a config byte, then KID and CTR as minimal
/// big-endian integers.
///
/// ```
///  0 1 2 3 4 5 6 7
/// +-+-+-+-+-+-+-+-+---------------------------------+-------------------+
/// |X|  K  |Y|  C  |   Key ID (0-8 bytes)            |  Counter (0-8)    |
/// +-+-+-+-+-+-+-+-+---------------------------------+-------------------+
/// ```
/// X = 0: K is the KID itself (0…7). X = 1: K + 1 bytes of KID follow. Same for Y/C/CTR.
public struct SFrameHeader: Sendable, Hashable {
    public var keyID: UInt64
    public var counter: UInt64

    /// The longest header: 1 + 8 + 8 bytes.
    public static let maximumEncodedLength = 17

    public init(keyID: UInt64, counter: UInt64) {
        self.keyID = keyID
        self.counter = counter
    }

    /// Encoded length in bytes (1 to 17).
    @inlinable
    public var encodedLength: Int {
        1 + Self.extraBytes(keyID) + Self.extraBytes(counter)
    }

    /// Writes the header at the start of `buffer`; returns its length.
    @inlinable
    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let length = encodedLength
        guard buffer.count >= length else { throw SFrameError.bufferTooSmall(required: length, available: buffer.count) }
        let kidBytes = Self.extraBytes(keyID), ctrBytes = Self.extraBytes(counter)
        let k: UInt8 = kidBytes == 0 ? UInt8(keyID) : 0x08 | UInt8(kidBytes - 1)
        let c: UInt8 = ctrBytes == 0 ? UInt8(counter) : 0x08 | UInt8(ctrBytes - 1)
        buffer[0] = k << 4 | c
        Self.writeBigEndian(keyID, count: kidBytes, into: buffer, at: 1)
        Self.writeBigEndian(counter, count: ctrBytes, into: buffer, at: 1 + kidBytes)
        return length
    }

    /// The encoded bytes (convenience; allocates).
    public var encoded: [UInt8] {
        var out = [UInt8](repeating: 0, count: encodedLength)
        _ = out.withUnsafeMutableBytes { try! encode(into: $0) }
        return out
    }

    /// Parses a header from the start of `bytes`; returns it and its length.
    /// Throws ``SFrameError/truncatedHeader`` when the bytes end inside it.
    @inlinable
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> (header: SFrameHeader, length: Int) {
        guard bytes.count >= 1 else { throw SFrameError.truncatedHeader }
        let config = bytes[0]
        let x = config & 0x80 != 0, y = config & 0x08 != 0
        let k = Int((config >> 4) & 0x07), c = Int(config & 0x07)
        let kidBytes = x ? k + 1 : 0
        let ctrBytes = y ? c + 1 : 0
        let length = 1 + kidBytes + ctrBytes
        guard bytes.count >= length else { throw SFrameError.truncatedHeader }
        let kid = x ? readBigEndian(bytes, at: 1, count: kidBytes) : UInt64(k)
        let ctr = y ? readBigEndian(bytes, at: 1 + kidBytes, count: ctrBytes) : UInt64(c)
        return (SFrameHeader(keyID: kid, counter: ctr), length)
    }

    public static func decode(_ bytes: [UInt8]) throws -> (header: SFrameHeader, length: Int) {
        try bytes.withUnsafeBytes { try decode($0) }
    }

    /// Bytes needed after the config byte for `value`: 0 if it fits the 3-bit field.
    @inlinable
    static func extraBytes(_ value: UInt64) -> Int {
        value < 8 ? 0 : (64 - value.leadingZeroBitCount + 7) / 8
    }

    @inlinable
    static func writeBigEndian(_ value: UInt64, count: Int, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        var i = 0
        while i < count {
            buffer[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(count - 1 - i)))
            i += 1
        }
    }

    @inlinable
    static func readBigEndian(_ bytes: UnsafeRawBufferPointer, at offset: Int, count: Int) -> UInt64 {
        var v: UInt64 = 0
        var i = 0
        while i < count {
            v = v << 8 | UInt64(bytes[offset + i])
            i += 1
        }
        return v
    }
}
