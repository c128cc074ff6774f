/// The 14-byte header that precedes the Opus packet in an audio plaintext
/// (PROTOCOL.md 2.6, kind 1).
///
/// ```
/// sequence: u16 || timestamp: u32 || send_time_us: u64 || opus packet (≥ 1 byte)
/// ```
public struct AudioPacketHeader: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Per-sender packet number: +1 per packet sent, wrapping at 2^16.
    public var sequence: UInt16
    /// 48 kHz sample clock of the packet's first sample: +960 per 20 ms
    /// packet, wrapping at 2^32.
    public var timestamp: UInt32
    /// The sender's monotonic clock, in microseconds, when the packet was
    /// encrypted. Meaningful as an absolute latency only when sender and
    /// receiver share a clock (one machine); otherwise only differences are.
    public var sendTimeMicros: UInt64

    public init(sequence: UInt16, timestamp: UInt32, sendTimeMicros: UInt64) {
        self.sequence = sequence
        self.timestamp = timestamp
        self.sendTimeMicros = sendTimeMicros
    }

    public var description: String {
        "seq \(sequence) ts \(timestamp) sent \(sendTimeMicros) µs"
    }
}

/// Why an audio plaintext could not be encoded or decoded. Each description
/// is one line.
public enum AudioPacketError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The plaintext ends inside the 14-byte header.
    case truncatedHeader(length: Int)
    /// The plaintext is exactly a header: the Opus packet is empty.
    case emptyOpusPacket
    /// The plaintext is longer than ``AudioPacket/maximumPlaintextSize``
    /// (`length` is the whole plaintext, header included).
    case tooLong(length: Int, limit: Int)
    /// The caller's output buffer cannot hold the encoded plaintext.
    case outputBufferTooSmall(required: Int, available: Int)

    public var description: String {
        switch self {
        case .truncatedHeader(let length):
            return "audio plaintext of \(length) bytes ends inside its \(AudioPacket.headerSize)-byte header"
        case .emptyOpusPacket:
            return "audio plaintext carries an empty Opus packet (at least 1 byte is required after the header)"
        case .tooLong(let length, let limit):
            return "audio plaintext of \(length) bytes is over the \(limit)-byte limit"
        case .outputBufferTooSmall(let required, let available):
            return "audio packet output buffer too small: \(required) bytes needed, \(available) available"
        }
    }
}

/// Encodes and decodes audio plaintexts: ``AudioPacketHeader`` followed by
/// one Opus packet. Big-endian, as everything on the wire (PROTOCOL.md 0.2).
///
/// Neither direction allocates (except the `[UInt8]` conveniences) and
/// neither traps: every length is checked before it is used.
public enum AudioPacket {
    // MARK: Limits

    /// Bytes of header before the Opus packet.
    public static let headerSize = 14

    /// The largest audio plaintext: what fits in a 1 500-byte audio `FRAME`
    /// payload with the largest SFrame header (17) and the tag (16).
    public static let maximumPlaintextSize = 1_500 - 17 - 16

    /// The largest Opus packet a plaintext can carry (1 453 bytes).
    public static let maximumOpusPacketSize = maximumPlaintextSize - headerSize

    /// The smallest valid plaintext: a header and a 1-byte Opus packet.
    public static let minimumPlaintextSize = headerSize + 1

    /// Timestamp increase per 20 ms packet at 48 kHz.
    public static let samplesPerPacket: UInt32 = 960

    // MARK: Encoding

    /// Writes the 14 header bytes at the start of `output`.
    ///
    /// The send pipeline encodes the Opus packet straight into
    /// `output[headerSize...]` and then calls this, so nothing is copied.
    public static func writeHeader(_ header: AudioPacketHeader, into output: UnsafeMutableRawBufferPointer) throws(AudioPacketError) {
        guard output.count >= headerSize else {
            throw .outputBufferTooSmall(required: headerSize, available: output.count)
        }
        output.storeBytes(of: header.sequence.bigEndian, toByteOffset: 0, as: UInt16.self)
        output.storeBytes(of: header.timestamp.bigEndian, toByteOffset: 2, as: UInt32.self)
        output.storeBytes(of: header.sendTimeMicros.bigEndian, toByteOffset: 6, as: UInt64.self)
    }

    /// Encodes `header || opus` into the start of `output` without allocating.
    ///
    /// - Returns: the plaintext length (`headerSize + opus.count`).
    /// - Throws: ``AudioPacketError/emptyOpusPacket``,
    ///   ``AudioPacketError/tooLong(length:limit:)`` for an Opus packet over
    ///   ``maximumOpusPacketSize``, or
    ///   ``AudioPacketError/outputBufferTooSmall(required:available:)``.
    ///   Nothing is written when it throws.
    public static func encode(
        _ header: AudioPacketHeader, opus: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(AudioPacketError) -> Int {
        guard !opus.isEmpty else { throw .emptyOpusPacket }
        let length = headerSize + opus.count
        guard length <= maximumPlaintextSize else { throw .tooLong(length: length, limit: maximumPlaintextSize) }
        guard output.count >= length else { throw .outputBufferTooSmall(required: length, available: output.count) }
        try writeHeader(header, into: output)
        UnsafeMutableRawBufferPointer(rebasing: output[headerSize..<length]).copyMemory(from: opus)
        return length
    }

    /// Encodes `header || opus` into a new array. Allocates.
    public static func encode(_ header: AudioPacketHeader, opus: [UInt8]) throws(AudioPacketError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: headerSize + opus.count)
        let length = try opus.withUnsafeBufferPointer { source throws(AudioPacketError) in
            try output.withUnsafeMutableBufferPointer { out throws(AudioPacketError) in
                try encode(header, opus: UnsafeRawBufferPointer(source), into: UnsafeMutableRawBufferPointer(out))
            }
        }
        precondition(length == output.count)
        return output
    }

    // MARK: Decoding

    /// Parses a plaintext without copying.
    ///
    /// - Returns: the header and the Opus packet, a view into `bytes` that is
    ///   valid as long as `bytes` is.
    /// - Throws: ``AudioPacketError/truncatedHeader(length:)`` (< 14 bytes),
    ///   ``AudioPacketError/emptyOpusPacket`` (exactly 14), or
    ///   ``AudioPacketError/tooLong(length:limit:)`` (> 1 467).
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(AudioPacketError) -> (header: AudioPacketHeader, opus: UnsafeRawBufferPointer) {
        let header = try decodeHeader(bytes)
        return (header, UnsafeRawBufferPointer(rebasing: bytes[headerSize...]))
    }

    /// Parses a plaintext held in an array; the Opus packet is a slice of it.
    public static func decode(_ bytes: [UInt8]) throws(AudioPacketError) -> (header: AudioPacketHeader, opus: ArraySlice<UInt8>) {
        let header = try bytes.withUnsafeBufferPointer { raw throws(AudioPacketError) in
            try decodeHeader(UnsafeRawBufferPointer(raw))
        }
        return (header, bytes[headerSize...])
    }

    /// Validates the whole plaintext's length and reads its header.
    private static func decodeHeader(_ bytes: UnsafeRawBufferPointer) throws(AudioPacketError) -> AudioPacketHeader {
        guard bytes.count >= headerSize else { throw .truncatedHeader(length: bytes.count) }
        guard bytes.count > headerSize else { throw .emptyOpusPacket }
        guard bytes.count <= maximumPlaintextSize else { throw .tooLong(length: bytes.count, limit: maximumPlaintextSize) }
        return AudioPacketHeader(
            sequence: UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self)),
            timestamp: UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt32.self)),
            sendTimeMicros: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt64.self)))
    }
}

/// Serial-number arithmetic on 16-bit sequence numbers (RFC 1982 style).
public enum SequenceNumber {
    /// The signed distance from `a` to `b`, in −32 768…32 767: positive when
    /// `b` is after `a`, allowing for wrap-around (`distance(65535, 1) == 2`).
    @inlinable
    public static func distance(from a: UInt16, to b: UInt16) -> Int {
        Int(Int16(bitPattern: b &- a))
    }
}
