/// Rebuilds one sender's share objects from screen chunks that may arrive
/// out of order or more than once (PROTOCOL.md 2.6). Use one per sender.
///
/// Rules, in the order they are applied to each chunk:
/// 1. The chunk must be well formed (``ScreenChunk/decode(_:)``); otherwise
///    it alone is dropped with a typed error.
/// 2. Only the newest ``Configuration/maximumConcurrentObjects`` share ids
///    are live. A higher `share_id` discards incomplete objects that fall
///    out of that window (2.6's MAY, counted as superseded); a chunk for an
///    id below the window, or for an object already completed or discarded,
///    is ``Outcome/stale``.
/// 3. Every chunk of an object must carry the first chunk's `total_chunks`
///    and `total_length`; an index may repeat only with the same data (then
///    it is a ``Outcome/duplicate``); the data may not overrun
///    `total_length`; when every index has arrived the data must add up to
///    `total_length`. A violation discards the object and throws.
/// 4. A new object must respect ``Configuration/maximumObjectSize`` and
///    ``Configuration/maximumChunksPerObject``.
///
/// Memory: chunk data is stored as it arrives, never from a declared
/// length, so a sender holds at most `maximumConcurrentObjects ×
/// maximumObjectSize` bytes (128 MiB by default) plus per-chunk overhead
/// bounded by the chunk limit. A completed object's bytes are returned and
/// forgotten; hashing (e.g. SHA-256) is left to the caller.
public struct ScreenReassembler: Sendable {
    // MARK: Configuration

    public struct Configuration: Sendable, Equatable {
        /// Largest object accepted, in bytes (default 64 MiB).
        public var maximumObjectSize: Int
        /// Incomplete objects kept at once (default 2).
        public var maximumConcurrentObjects: Int
        /// Most chunks per object (default 65 536: a 64 MiB object in 1 KiB chunks).
        public var maximumChunksPerObject: Int

        public init(maximumObjectSize: Int = 64 * 1024 * 1024, maximumConcurrentObjects: Int = 2, maximumChunksPerObject: Int = 65_536) {
            self.maximumObjectSize = maximumObjectSize
            self.maximumConcurrentObjects = maximumConcurrentObjects
            self.maximumChunksPerObject = maximumChunksPerObject
        }
    }

    /// Counters since creation.
    public struct Statistics: Sendable, Equatable {
        /// Chunks stored (new data for a live object).
        public var chunksAccepted = 0
        /// Repeated chunks with identical data.
        public var duplicateChunks = 0
        /// Chunks for objects outside the live window or already finished.
        public var staleChunks = 0
        /// Chunks rejected as malformed or over a limit.
        public var chunksRejected = 0
        public var objectsCompleted = 0
        /// Objects discarded for breaking a consistency rule.
        public var objectsDiscarded = 0
        /// Incomplete objects discarded because newer ones arrived.
        public var objectsSuperseded = 0

        public init() {}
    }

    /// A complete share object.
    public struct CompletedObject: Sendable, Equatable {
        public var shareID: UInt32
        public var bytes: [UInt8]
        public var byteCount: Int { bytes.count }

        public init(shareID: UInt32, bytes: [UInt8]) {
            self.shareID = shareID
            self.bytes = bytes
        }
    }

    /// What a chunk did.
    public enum Outcome: Sendable, Equatable {
        /// Stored; the object still lacks chunks.
        case incomplete(shareID: UInt32, receivedChunks: Int, totalChunks: Int)
        /// Same index and data as a chunk already stored: ignored.
        case duplicate(shareID: UInt32, chunkIndex: UInt32)
        /// For an object already completed, discarded or superseded: ignored.
        case stale(shareID: UInt32)
        /// The chunk completed its object.
        case completed(CompletedObject)
    }

    private struct PartialObject: Sendable {
        let header: ScreenChunkHeader
        var pieces: [UInt32: [UInt8]] = [:]
        var receivedBytes: UInt64 = 0
    }

    public let configuration: Configuration
    public private(set) var statistics = Statistics()
    private var partials: [PartialObject] = []
    /// Completed or discarded ids still inside the live window.
    private var finished: [UInt32] = []
    /// The highest `share_id` seen.
    private var newest: UInt32?

    /// Data bytes held for incomplete objects.
    public var bufferedBytes: Int { partials.reduce(0) { $0 + Int($1.receivedBytes) } }
    /// Incomplete objects held.
    public var objectsInProgress: Int { partials.count }

    /// - Throws: ``ScreenChunkError/invalidConfiguration(_:)`` unless every limit is ≥ 1.
    public init(configuration: Configuration = Configuration()) throws(ScreenChunkError) {
        guard configuration.maximumObjectSize >= 1 else {
            throw .invalidConfiguration("maximumObjectSize \(configuration.maximumObjectSize) must be at least 1")
        }
        guard configuration.maximumConcurrentObjects >= 1 else {
            throw .invalidConfiguration("maximumConcurrentObjects \(configuration.maximumConcurrentObjects) must be at least 1")
        }
        guard configuration.maximumChunksPerObject >= 1 else {
            throw .invalidConfiguration("maximumChunksPerObject \(configuration.maximumChunksPerObject) must be at least 1")
        }
        self.configuration = configuration
    }

    // MARK: Receiving

    /// Takes one decrypted screen chunk.
    ///
    /// - Throws: a malformed-chunk or limit case of ``ScreenChunkError``
    ///   (the chunk is dropped), or a consistency violation (the object is
    ///   discarded too).
    public mutating func receive(_ chunk: UnsafeRawBufferPointer) throws(ScreenChunkError) -> Outcome {
        let header: ScreenChunkHeader
        let data: UnsafeRawBufferPointer
        do {
            (header, data) = try ScreenChunk.decode(chunk)
        } catch {
            statistics.chunksRejected += 1
            throw error
        }
        let id = header.shareID
        let window = UInt32(clamping: configuration.maximumConcurrentObjects)

        // Rule 2: the live window of share ids.
        if let newest, id <= newest {
            if newest - id >= window || finished.contains(id) {
                statistics.staleChunks += 1
                return .stale(shareID: id)
            }
        } else {
            newest = id
            let superseded = partials.filter { id - $0.header.shareID >= window }.count
            statistics.objectsSuperseded += superseded
            partials.removeAll { id - $0.header.shareID >= window }
            finished.removeAll { id - $0 >= window }
        }

        // Rule 3 for a known object, rule 4 for a new one.
        guard let index = partials.firstIndex(where: { $0.header.shareID == id }) else {
            guard header.totalLength <= UInt64(configuration.maximumObjectSize) else {
                statistics.chunksRejected += 1
                throw .objectTooLarge(shareID: id, totalLength: header.totalLength, limit: configuration.maximumObjectSize)
            }
            guard Int(header.totalChunks) <= configuration.maximumChunksPerObject else {
                statistics.chunksRejected += 1
                throw .tooManyChunks(shareID: id, totalChunks: header.totalChunks, limit: configuration.maximumChunksPerObject)
            }
            var object = PartialObject(header: header)
            object.pieces[header.chunkIndex] = Array(data)
            object.receivedBytes = UInt64(data.count)
            statistics.chunksAccepted += 1
            return try finishIfComplete(object, at: nil)
        }

        var object = partials[index]
        guard object.header.totalChunks == header.totalChunks, object.header.totalLength == header.totalLength else {
            throw discard(at: index, .inconsistentChunk(shareID: id, expected: object.header, received: header))
        }
        if let existing = object.pieces[header.chunkIndex] {
            guard existing.elementsEqual(data) else {
                throw discard(at: index, .conflictingDuplicate(shareID: id, chunkIndex: header.chunkIndex))
            }
            statistics.duplicateChunks += 1
            return .duplicate(shareID: id, chunkIndex: header.chunkIndex)
        }
        let received = object.receivedBytes + UInt64(data.count)
        guard received <= object.header.totalLength else {
            throw discard(at: index, .overrun(shareID: id, receivedBytes: received, totalLength: object.header.totalLength))
        }
        // Take the object out while it grows, so its dictionary is not copied.
        partials[index] = PartialObject(header: object.header)
        object.pieces[header.chunkIndex] = Array(data)
        object.receivedBytes = received
        statistics.chunksAccepted += 1
        return try finishIfComplete(object, at: index)
    }

    /// Array convenience for ``receive(_:)-(UnsafeRawBufferPointer)``.
    public mutating func receive(_ chunk: [UInt8]) throws(ScreenChunkError) -> Outcome {
        try chunk.withUnsafeBufferPointer { bytes throws(ScreenChunkError) in try receive(UnsafeRawBufferPointer(bytes)) }
    }

    /// Stores `object` back (at `index`, or as a new partial), or completes it.
    private mutating func finishIfComplete(_ object: PartialObject, at index: Int?) throws(ScreenChunkError) -> Outcome {
        let header = object.header
        let total = Int(header.totalChunks)
        guard object.pieces.count == total else {
            if let index {
                partials[index] = object
            } else {
                partials.append(object)
            }
            return .incomplete(shareID: header.shareID, receivedChunks: object.pieces.count, totalChunks: total)
        }
        if let index { partials.remove(at: index) }
        finished.append(header.shareID)
        guard object.receivedBytes == header.totalLength else {
            statistics.objectsDiscarded += 1
            throw .lengthMismatch(shareID: header.shareID, receivedBytes: object.receivedBytes, totalLength: header.totalLength)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(object.receivedBytes))
        for chunkIndex in 0..<header.totalChunks {
            // Every index 0..<total is present: pieces.count == total and all keys are < total.
            if let piece = object.pieces[chunkIndex] { bytes += piece }
        }
        statistics.objectsCompleted += 1
        return .completed(CompletedObject(shareID: header.shareID, bytes: bytes))
    }

    /// Drops the object at `index`, remembers its id as finished, and returns `error` to throw.
    private mutating func discard(at index: Int, _ error: ScreenChunkError) -> ScreenChunkError {
        let id = partials[index].header.shareID
        partials.remove(at: index)
        finished.append(id)
        statistics.objectsDiscarded += 1
        return error
    }
}
