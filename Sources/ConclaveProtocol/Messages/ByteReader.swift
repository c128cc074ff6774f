/// A bounds-checked, big-endian cursor over borrowed bytes.
///
/// Guarantees:
/// - No read traps on short input: each read first checks ``remainingCount`` and throws
///   ``MessageDecodingError/truncated(field:)`` naming the field it was reading.
/// - A read that throws leaves ``readerIndex`` where it was (swift-nio's decoder contract).
/// - Nothing is allocated except by ``readBytes(count:field:)``, which checks `count`
///   against the bytes actually present before allocating.
///
/// The reader borrows `buffer`: use it only inside the `withUnsafeBytes` (or similar)
/// scope that produced the buffer.
public struct ByteReader {
    /// The bytes being read.
    public let buffer: UnsafeRawBufferPointer
    /// Offset of the next byte to read, from `0` to `buffer.count`.
    public private(set) var readerIndex: Int

    /// Creates a reader positioned at the first byte of `buffer`.
    public init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.readerIndex = 0
    }

    /// Bytes not yet read.
    public var remainingCount: Int { buffer.count - readerIndex }

    /// True when every byte has been read.
    public var isAtEnd: Bool { readerIndex == buffer.count }

    @inline(__always)
    private func require(_ count: Int, _ field: String) throws(MessageDecodingError) {
        guard count >= 0, count <= remainingCount else { throw .truncated(field: field) }
    }

    @inline(__always)
    private mutating func load<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(MessageDecodingError) -> T {
        try require(MemoryLayout<T>.size, field)
        let value = buffer.loadUnaligned(fromByteOffset: readerIndex, as: T.self)
        readerIndex += MemoryLayout<T>.size
        return T(bigEndian: value)
    }

    /// Reads one byte.
    public mutating func readUInt8(_ field: String) throws(MessageDecodingError) -> UInt8 {
        try load(UInt8.self, field)
    }

    /// Reads a big-endian `u16`.
    public mutating func readUInt16(_ field: String) throws(MessageDecodingError) -> UInt16 {
        try load(UInt16.self, field)
    }

    /// Reads a big-endian `u32`.
    public mutating func readUInt32(_ field: String) throws(MessageDecodingError) -> UInt32 {
        try load(UInt32.self, field)
    }

    /// Reads a big-endian `u64`.
    public mutating func readUInt64(_ field: String) throws(MessageDecodingError) -> UInt64 {
        try load(UInt64.self, field)
    }

    /// Returns the next `count` bytes without copying them and moves past them.
    ///
    /// The result borrows ``buffer``; it is valid as long as `buffer` is.
    public mutating func readSlice(count: Int, field: String) throws(MessageDecodingError) -> UnsafeRawBufferPointer {
        try require(count, field)
        let slice = UnsafeRawBufferPointer(rebasing: buffer[readerIndex..<readerIndex + count])
        readerIndex += count
        return slice
    }

    /// Copies the next `count` bytes into a new array, after checking they are present.
    public mutating func readBytes(count: Int, field: String) throws(MessageDecodingError) -> [UInt8] {
        Array(try readSlice(count: count, field: field))
    }

    /// Returns every byte not yet read, without copying, and moves to the end.
    public mutating func readRemaining() -> UnsafeRawBufferPointer {
        let slice = UnsafeRawBufferPointer(rebasing: buffer[readerIndex...])
        readerIndex = buffer.count
        return slice
    }

    /// Throws ``MessageDecodingError/trailingBytes(count:)`` unless every byte has been read.
    public func expectEnd() throws(MessageDecodingError) {
        guard isAtEnd else { throw .trailingBytes(count: remainingCount) }
    }
}
