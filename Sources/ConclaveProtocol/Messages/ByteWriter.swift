/// Appends big-endian integers and raw bytes to a byte array.
///
/// `ByteWriter` owns its array; to append to an array you already have without copying it,
/// use ``withWriter(appendingTo:_:)``, which moves the array in and out.
public struct ByteWriter: Sendable {
    /// The bytes written so far.
    public var bytes: [UInt8]

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Runs `body` with a writer that appends to `bytes` in place (no copy of `bytes`).
    public static func withWriter<R>(appendingTo bytes: inout [UInt8], _ body: (inout ByteWriter) throws -> R) rethrows -> R {
        var writer = ByteWriter()
        swap(&writer.bytes, &bytes)
        defer { swap(&writer.bytes, &bytes) }
        return try body(&writer)
    }

    /// Appends one byte.
    public mutating func writeUInt8(_ value: UInt8) {
        bytes.append(value)
    }

    /// Appends a big-endian `u16`.
    public mutating func writeUInt16(_ value: UInt16) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a big-endian `u32`.
    public mutating func writeUInt32(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends a big-endian `u64`.
    public mutating func writeUInt64(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends raw bytes.
    public mutating func writeBytes(_ value: some Sequence<UInt8>) {
        bytes.append(contentsOf: value)
    }
}
