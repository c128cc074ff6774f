/// The 20-byte header of a screen chunk (PROTOCOL.md 2.6, kind 2).
///
/// ```
/// share_id: u32 || chunk_index: u32 || total_chunks: u32 || total_length: u64 || data (≥ 1 byte)
/// ```
public struct ScreenChunkHeader: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The share object; a sender increases it by 1 per object, from 0.
    public var shareID: UInt32
    /// 0 ..< ``totalChunks``.
    public var chunkIndex: UInt32
    /// Chunks in the object, ≥ 1.
    public var totalChunks: UInt32
    /// The object's length in bytes, ≥ 1.
    public var totalLength: UInt64

    public init(shareID: UInt32, chunkIndex: UInt32, totalChunks: UInt32, totalLength: UInt64) {
        self.shareID = shareID
        self.chunkIndex = chunkIndex
        self.totalChunks = totalChunks
        self.totalLength = totalLength
    }

    public var description: String {
        "share \(shareID) chunk \(chunkIndex)/\(totalChunks) of \(totalLength) bytes"
    }
}

/// Why a screen chunk could not be encoded, decoded or reassembled. Each
/// description is one line.
///
/// Malformed chunks (the first group) are dropped alone. The consistency
/// violations of 2.6 (`inconsistentChunk`, `conflictingDuplicate`,
/// `overrun`, `lengthMismatch`) also discard the whole object.
public enum ScreenChunkError: Error, Sendable, Equatable, CustomStringConvertible {
    // MARK: Malformed chunk
    /// The plaintext ends inside the 20-byte header.
    case truncatedHeader(length: Int)
    /// The chunk carries no data.
    case emptyData
    /// The plaintext is over ``ScreenChunk/maximumPlaintextSize``.
    case tooLong(length: Int, limit: Int)
    /// `total_chunks` is 0.
    case zeroTotalChunks
    /// `chunk_index` ≥ `total_chunks`.
    case chunkIndexOutOfRange(index: UInt32, totalChunks: UInt32)
    /// `total_length` is 0.
    case zeroTotalLength
    /// More chunks than bytes: some chunk would have to be empty.
    case moreChunksThanBytes(totalChunks: UInt32, totalLength: UInt64)
    /// One chunk's data is longer than the whole object.
    case dataLongerThanObject(dataLength: Int, totalLength: UInt64)

    // MARK: Local limits (the object is not started)
    /// `total_length` is over the receiver's object size limit.
    case objectTooLarge(shareID: UInt32, totalLength: UInt64, limit: Int)
    /// `total_chunks` is over the receiver's chunk count limit.
    case tooManyChunks(shareID: UInt32, totalChunks: UInt32, limit: Int)

    // MARK: Consistency violations (the object is discarded)
    /// A chunk's `total_chunks` or `total_length` differs from the object's first chunk.
    case inconsistentChunk(shareID: UInt32, expected: ScreenChunkHeader, received: ScreenChunkHeader)
    /// An index arrived again with other data.
    case conflictingDuplicate(shareID: UInt32, chunkIndex: UInt32)
    /// The data received so far is longer than `total_length`.
    case overrun(shareID: UInt32, receivedBytes: UInt64, totalLength: UInt64)
    /// Every index arrived but the data is shorter than `total_length`.
    case lengthMismatch(shareID: UInt32, receivedBytes: UInt64, totalLength: UInt64)

    // MARK: Sending
    /// An object must have at least one byte.
    case emptyObject
    /// The chunker's data size is not in 1…``ScreenChunk/maximumDataSize``.
    case invalidChunkDataSize(Int, limit: Int)
    /// The object needs more than 2^32 − 1 chunks at this chunk size.
    case objectNeedsTooManyChunks(length: Int, chunkDataSize: Int)
    /// `share_id` would wrap past 2^32 − 1.
    case shareIDsExhausted
    /// The caller's output buffer cannot hold the chunk.
    case outputBufferTooSmall(required: Int, available: Int)
    /// A chunk index outside the object being sent.
    case noSuchChunk(index: Int, totalChunks: Int)
    /// A reassembler limit is not positive.
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .truncatedHeader(let length):
            return "screen chunk of \(length) bytes ends inside its \(ScreenChunk.headerSize)-byte header"
        case .emptyData:
            return "screen chunk carries no data (at least 1 byte is required)"
        case .tooLong(let length, let limit):
            return "screen chunk of \(length) bytes is over the \(limit)-byte limit"
        case .zeroTotalChunks:
            return "screen chunk declares total_chunks 0"
        case .chunkIndexOutOfRange(let index, let total):
            return "screen chunk index \(index) is not below total_chunks \(total)"
        case .zeroTotalLength:
            return "screen chunk declares total_length 0"
        case .moreChunksThanBytes(let chunks, let length):
            return "screen chunk declares \(chunks) chunks for \(length) bytes; every chunk needs at least 1 byte"
        case .dataLongerThanObject(let dataLength, let totalLength):
            return "screen chunk carries \(dataLength) bytes of data, more than the object's total_length \(totalLength)"
        case .objectTooLarge(let shareID, let length, let limit):
            return "screen share \(shareID) of \(length) bytes is over the \(limit)-byte object limit"
        case .tooManyChunks(let shareID, let chunks, let limit):
            return "screen share \(shareID) of \(chunks) chunks is over the \(limit)-chunk limit"
        case .inconsistentChunk(let shareID, let expected, let received):
            return
                "screen share \(shareID) discarded: a chunk declares \(received.totalChunks) chunks / \(received.totalLength) bytes, earlier ones \(expected.totalChunks) / \(expected.totalLength)"
        case .conflictingDuplicate(let shareID, let index):
            return "screen share \(shareID) discarded: chunk \(index) arrived again with different data"
        case .overrun(let shareID, let received, let total):
            return "screen share \(shareID) discarded: \(received) bytes of data overrun total_length \(total)"
        case .lengthMismatch(let shareID, let received, let total):
            return "screen share \(shareID) discarded: all chunks arrived with \(received) bytes but total_length is \(total)"
        case .emptyObject:
            return "screen share object is empty; it must have at least 1 byte"
        case .invalidChunkDataSize(let size, let limit):
            return "screen chunk data size \(size) is not in 1...\(limit)"
        case .objectNeedsTooManyChunks(let length, let size):
            return "screen share object of \(length) bytes needs more than 4294967295 chunks of \(size) bytes"
        case .shareIDsExhausted:
            return "screen share ids are exhausted (share_id would pass 4294967295)"
        case .outputBufferTooSmall(let required, let available):
            return "screen chunk output buffer too small: \(required) bytes needed, \(available) available"
        case .noSuchChunk(let index, let total):
            return "screen chunk index \(index) is not in 0..<\(total)"
        case .invalidConfiguration(let reason):
            return "invalid screen reassembler configuration: \(reason)"
        }
    }
}

/// Encodes and decodes screen chunks. Neither direction traps, and
/// decoding checks every per-chunk rule of 2.6 that one chunk can show.
public enum ScreenChunk {
    /// Bytes of header before the data.
    public static let headerSize = 20

    /// The largest screen plaintext with the largest SFrame header (17) and
    /// the tag (16) in a 16 384-byte `FRAME` payload: 16 351 bytes.
    public static let maximumPlaintextSize = 16_384 - 17 - 16

    /// The most data one chunk carries: 16 331 bytes.
    public static let maximumDataSize = maximumPlaintextSize - headerSize

    /// Writes `header || data` into the start of `output`.
    ///
    /// - Returns: the chunk length.
    /// - Throws: ``ScreenChunkError/emptyData``, ``ScreenChunkError/tooLong(length:limit:)``
    ///   or ``ScreenChunkError/outputBufferTooSmall(required:available:)``.
    public static func encode(
        _ header: ScreenChunkHeader, data: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws(ScreenChunkError) -> Int {
        guard !data.isEmpty else { throw .emptyData }
        let length = headerSize + data.count
        guard length <= maximumPlaintextSize else { throw .tooLong(length: length, limit: maximumPlaintextSize) }
        guard output.count >= length else { throw .outputBufferTooSmall(required: length, available: output.count) }
        output.storeBytes(of: header.shareID.bigEndian, toByteOffset: 0, as: UInt32.self)
        output.storeBytes(of: header.chunkIndex.bigEndian, toByteOffset: 4, as: UInt32.self)
        output.storeBytes(of: header.totalChunks.bigEndian, toByteOffset: 8, as: UInt32.self)
        output.storeBytes(of: header.totalLength.bigEndian, toByteOffset: 12, as: UInt64.self)
        UnsafeMutableRawBufferPointer(rebasing: output[headerSize..<length]).copyMemory(from: data)
        return length
    }

    /// Parses a chunk without copying; `data` is a view into `bytes`.
    ///
    /// - Throws: any of the malformed-chunk cases of ``ScreenChunkError``.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(ScreenChunkError) -> (header: ScreenChunkHeader, data: UnsafeRawBufferPointer) {
        guard bytes.count >= headerSize else { throw .truncatedHeader(length: bytes.count) }
        guard bytes.count > headerSize else { throw .emptyData }
        guard bytes.count <= maximumPlaintextSize else { throw .tooLong(length: bytes.count, limit: maximumPlaintextSize) }
        let header = ScreenChunkHeader(
            shareID: UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
            chunkIndex: UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
            totalChunks: UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
            totalLength: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt64.self)))
        let data = UnsafeRawBufferPointer(rebasing: bytes[headerSize...])
        guard header.totalChunks > 0 else { throw .zeroTotalChunks }
        guard header.chunkIndex < header.totalChunks else {
            throw .chunkIndexOutOfRange(index: header.chunkIndex, totalChunks: header.totalChunks)
        }
        guard header.totalLength > 0 else { throw .zeroTotalLength }
        guard UInt64(header.totalChunks) <= header.totalLength else {
            throw .moreChunksThanBytes(totalChunks: header.totalChunks, totalLength: header.totalLength)
        }
        guard UInt64(data.count) <= header.totalLength else {
            throw .dataLongerThanObject(dataLength: data.count, totalLength: header.totalLength)
        }
        return (header, data)
    }

    /// Array convenience for ``encode(_:data:into:)``. Allocates.
    public static func encode(_ header: ScreenChunkHeader, data: [UInt8]) throws(ScreenChunkError) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: headerSize + data.count)
        _ = try data.withUnsafeBufferPointer { source throws(ScreenChunkError) in
            try output.withUnsafeMutableBufferPointer { out throws(ScreenChunkError) in
                try encode(header, data: UnsafeRawBufferPointer(source), into: UnsafeMutableRawBufferPointer(out))
            }
        }
        return output
    }
}

/// Splits share objects into screen chunks, numbering objects from
/// `firstShareID` upwards.
public struct ScreenChunker: Sendable {
    /// Data bytes per chunk (all but the last chunk carry exactly this many).
    public let chunkDataSize: Int
    /// The `share_id` the next object gets.
    public private(set) var nextShareID: UInt32
    private var exhausted = false

    /// - Parameter chunkDataSize: 1…``ScreenChunk/maximumDataSize`` (the
    ///   default), so every chunk fits with any SFrame header.
    /// - Throws: ``ScreenChunkError/invalidChunkDataSize(_:limit:)``.
    public init(chunkDataSize: Int = ScreenChunk.maximumDataSize, firstShareID: UInt32 = 0) throws(ScreenChunkError) {
        guard (1...ScreenChunk.maximumDataSize).contains(chunkDataSize) else {
            throw .invalidChunkDataSize(chunkDataSize, limit: ScreenChunk.maximumDataSize)
        }
        self.chunkDataSize = chunkDataSize
        self.nextShareID = firstShareID
    }

    /// The chunks of an object of `length` bytes at this chunk size.
    public func chunkCount(forObjectLength length: Int) -> Int {
        length <= 0 ? 0 : (length - 1) / chunkDataSize + 1
    }

    /// Assigns the next `share_id` to an object of `length` bytes; then write
    /// its chunks with ``writeChunk(_:of:header:into:)``.
    ///
    /// - Returns: the header of chunk 0 (`chunkIndex` is set per chunk).
    /// - Throws: ``ScreenChunkError/emptyObject``,
    ///   ``ScreenChunkError/objectNeedsTooManyChunks(length:chunkDataSize:)`` or
    ///   ``ScreenChunkError/shareIDsExhausted``; no id is used up.
    public mutating func beginObject(length: Int) throws(ScreenChunkError) -> ScreenChunkHeader {
        guard length > 0 else { throw .emptyObject }
        let count = chunkCount(forObjectLength: length)
        guard count <= Int(UInt32.max) else { throw .objectNeedsTooManyChunks(length: length, chunkDataSize: chunkDataSize) }
        guard !exhausted else { throw .shareIDsExhausted }
        let header = ScreenChunkHeader(shareID: nextShareID, chunkIndex: 0, totalChunks: UInt32(count), totalLength: UInt64(length))
        if nextShareID == .max { exhausted = true } else { nextShareID += 1 }
        return header
    }

    /// Writes chunk `index` of `object` (described by `header` from
    /// ``beginObject(length:)``) into `output` without allocating.
    ///
    /// - Returns: the chunk length.
    public func writeChunk(
        _ index: Int, of object: UnsafeRawBufferPointer, header: ScreenChunkHeader, into output: UnsafeMutableRawBufferPointer
    ) throws(ScreenChunkError) -> Int {
        let total = Int(header.totalChunks)
        guard (0..<total).contains(index), UInt64(object.count) == header.totalLength else {
            throw .noSuchChunk(index: index, totalChunks: total)
        }
        let start = index * chunkDataSize
        let end = min(object.count, start + chunkDataSize)
        var chunkHeader = header
        chunkHeader.chunkIndex = UInt32(index)
        return try ScreenChunk.encode(chunkHeader, data: UnsafeRawBufferPointer(rebasing: object[start..<end]), into: output)
    }

    /// Splits `object` into its chunks under the next `share_id`. Allocates.
    public mutating func chunks(for object: [UInt8]) throws(ScreenChunkError) -> [[UInt8]] {
        let header = try beginObject(length: object.count)
        var chunks: [[UInt8]] = []
        chunks.reserveCapacity(Int(header.totalChunks))
        var buffer = [UInt8](repeating: 0, count: ScreenChunk.headerSize + chunkDataSize)
        for index in 0..<Int(header.totalChunks) {
            let length = try object.withUnsafeBufferPointer { source throws(ScreenChunkError) in
                try buffer.withUnsafeMutableBufferPointer { out throws(ScreenChunkError) in
                    try writeChunk(index, of: UnsafeRawBufferPointer(source), header: header, into: UnsafeMutableRawBufferPointer(out))
                }
            }
            chunks.append(Array(buffer[..<length]))
        }
        return chunks
    }
}
