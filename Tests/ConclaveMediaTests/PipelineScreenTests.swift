import ConclaveMedia
import Testing

@Suite("Pipeline: screen chunks")
struct PipelineScreenTests {
    /// Deterministic object bytes.
    static func object(_ length: Int, seed: UInt64 = 1) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        return (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    /// A chunk built by hand, so a test can break any field.
    static func chunk(share: UInt32, index: UInt32, total: UInt32, length: UInt64, data: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: share.bigEndian) { bytes += $0 }
        withUnsafeBytes(of: index.bigEndian) { bytes += $0 }
        withUnsafeBytes(of: total.bigEndian) { bytes += $0 }
        withUnsafeBytes(of: length.bigEndian) { bytes += $0 }
        return bytes + data
    }

    /// Feeds chunks; returns the completed objects and every other outcome.
    static func feed(_ chunks: [[UInt8]], into reassembler: inout ScreenReassembler) throws -> [ScreenReassembler.CompletedObject] {
        var completed: [ScreenReassembler.CompletedObject] = []
        for chunk in chunks {
            if case .completed(let object) = try reassembler.receive(chunk) { completed.append(object) }
        }
        return completed
    }

    @Test("chunk layout is the 20-byte big-endian header of 2.6 then the data")
    func layout() throws {
        let header = ScreenChunkHeader(shareID: 0x0102_0304, chunkIndex: 5, totalChunks: 6, totalLength: 0x0000_0001_0000_0002)
        let bytes = try ScreenChunk.encode(header, data: [0xAA, 0xBB])
        #expect(pipelineHex(bytes) == "01020304" + "00000005" + "00000006" + "0000000100000002" + "aabb")
        let decoded = try bytes.withUnsafeBytes { raw in
            let (h, data) = try ScreenChunk.decode(raw)
            return (h, Array(data))
        }
        #expect(decoded.0 == header)
        #expect(decoded.1 == [0xAA, 0xBB])
        #expect(ScreenChunk.maximumDataSize == 16_331)
    }

    @Test("round trip in order", arguments: [1, 100, 1_000, 1_001, 16_331, 16_332, 200_000])
    func roundTrip(length: Int) throws {
        var chunker = try ScreenChunker(chunkDataSize: length == 16_331 || length == 16_332 || length == 200_000 ? ScreenChunk.maximumDataSize : 1_000)
        var reassembler = try ScreenReassembler()
        let object = Self.object(length)
        let chunks = try chunker.chunks(for: object)
        #expect(chunks.count == chunker.chunkCount(forObjectLength: length))
        #expect(chunks.allSatisfy { $0.count <= ScreenChunk.maximumPlaintextSize })
        let completed = try Self.feed(chunks, into: &reassembler)
        #expect(completed.count == 1)
        #expect(completed.first?.bytes == object)
        #expect(completed.first?.byteCount == length)
        #expect(completed.first?.shareID == 0)
        #expect(reassembler.bufferedBytes == 0)
        #expect(reassembler.objectsInProgress == 0)
    }

    @Test("one byte, exactly one chunk, and one byte more")
    func chunkBoundaries() throws {
        var chunker = try ScreenChunker(chunkDataSize: 64)
        #expect(try chunker.chunks(for: [7]).count == 1)
        #expect(try chunker.chunks(for: Self.object(64)).count == 1)
        let two = try chunker.chunks(for: Self.object(65))
        #expect(two.count == 2)
        #expect(two[1].count == 21)
        #expect(chunker.nextShareID == 3)
        #expect(throws: ScreenChunkError.emptyObject) { try chunker.chunks(for: []) }
        #expect(chunker.nextShareID == 3)
        #expect(throws: ScreenChunkError.invalidChunkDataSize(0, limit: 16_331)) { try ScreenChunker(chunkDataSize: 0) }
        #expect(throws: ScreenChunkError.invalidChunkDataSize(16_332, limit: 16_331)) { try ScreenChunker(chunkDataSize: 16_332) }
        var last = try ScreenChunker(firstShareID: .max)
        _ = try last.chunks(for: [1])
        #expect(throws: ScreenChunkError.shareIDsExhausted) { try last.chunks(for: [1]) }
    }

    @Test("many chunks out of order and with duplicates, several objects in a row")
    func shuffledWithDuplicates() throws {
        var chunker = try ScreenChunker(chunkDataSize: 100)
        var reassembler = try ScreenReassembler()
        var random = SplitMix64(seed: 99)
        for round in 0..<5 {
            let object = Self.object(5_000 + round * 37, seed: UInt64(round))
            var chunks = try chunker.chunks(for: object)
            let copies = chunks.count / 4
            for _ in 0..<copies { chunks.append(chunks[Int.random(in: 0..<chunks.count, using: &random)]) }
            chunks.shuffle(using: &random)
            // A copy that arrives before completion is a duplicate, after it a stale chunk.
            var completed: [ScreenReassembler.CompletedObject] = []
            var duplicates = 0
            for chunk in chunks {
                switch try reassembler.receive(chunk) {
                case .completed(let done): completed.append(done)
                case .duplicate: duplicates += 1
                case .stale: duplicates += 1
                case .incomplete: break
                }
            }
            #expect(completed == [ScreenReassembler.CompletedObject(shareID: UInt32(round), bytes: object)])
            #expect(duplicates == copies)
        }
        #expect(reassembler.statistics.objectsCompleted == 5)
        #expect(reassembler.statistics.objectsDiscarded == 0)
    }

    @Test("the non-allocating chunk writer matches the array API")
    func writeChunk() throws {
        var chunker = try ScreenChunker(chunkDataSize: 10)
        let object = Self.object(25)
        let header = try chunker.beginObject(length: 25)
        #expect(header.totalChunks == 3)
        var buffer = [UInt8](repeating: 0, count: 30)
        var reassembler = try ScreenReassembler()
        var outcome: ScreenReassembler.Outcome?
        for index in [2, 0, 1] {
            let length = try object.withUnsafeBytes { source in
                try buffer.withUnsafeMutableBytes { try chunker.writeChunk(index, of: source, header: header, into: $0) }
            }
            outcome = try reassembler.receive(Array(buffer[..<length]))
        }
        #expect(outcome == .completed(.init(shareID: 0, bytes: object)))
        #expect(throws: ScreenChunkError.noSuchChunk(index: 3, totalChunks: 3)) {
            try object.withUnsafeBytes { source in
                try buffer.withUnsafeMutableBytes { try chunker.writeChunk(3, of: source, header: header, into: $0) }
            }
        }
    }

    // MARK: Violations

    @Test("malformed chunks are rejected one by one")
    func malformed() throws {
        var reassembler = try ScreenReassembler()
        let valid = Self.chunk(share: 0, index: 0, total: 1, length: 3, data: [1, 2, 3])
        for length in 0..<20 {
            #expect(throws: ScreenChunkError.truncatedHeader(length: length)) { try reassembler.receive(Array(valid[..<length])) }
        }
        let cases: [([UInt8], ScreenChunkError)] = [
            (Array(valid[..<20]), .emptyData),
            (Self.chunk(share: 0, index: 0, total: 1, length: 20_000, data: [UInt8](repeating: 0, count: 16_332)), .tooLong(length: 16_352, limit: 16_351)),
            (Self.chunk(share: 0, index: 0, total: 0, length: 3, data: [1]), .zeroTotalChunks),
            (Self.chunk(share: 0, index: 2, total: 2, length: 3, data: [1]), .chunkIndexOutOfRange(index: 2, totalChunks: 2)),
            (Self.chunk(share: 0, index: 0, total: 1, length: 0, data: [1]), .zeroTotalLength),
            (Self.chunk(share: 0, index: 0, total: 4, length: 3, data: [1]), .moreChunksThanBytes(totalChunks: 4, totalLength: 3)),
            (Self.chunk(share: 0, index: 0, total: 2, length: 3, data: [1, 2, 3, 4]), .dataLongerThanObject(dataLength: 4, totalLength: 3)),
        ]
        for (bytes, error) in cases {
            #expect(throws: error) { try reassembler.receive(bytes) }
            #expect(!error.description.contains("\n"))
        }
        #expect(reassembler.statistics.chunksRejected == 20 + cases.count)
        #expect(reassembler.objectsInProgress == 0)
        // The object itself is still acceptable afterwards.
        #expect(try reassembler.receive(valid) == .completed(.init(shareID: 0, bytes: [1, 2, 3])))
    }

    @Test(
        "each consistency violation discards the object",
        arguments: [
            "inconsistent total_chunks", "inconsistent total_length", "conflicting duplicate", "overrun", "length mismatch",
        ])
    func violations(rule: String) throws {
        var reassembler = try ScreenReassembler()
        let first = Self.chunk(share: 4, index: 0, total: 3, length: 6, data: [1, 2])
        #expect(try reassembler.receive(first) == .incomplete(shareID: 4, receivedChunks: 1, totalChunks: 3))
        let expected = ScreenChunkHeader(shareID: 4, chunkIndex: 0, totalChunks: 3, totalLength: 6)
        let bad: [UInt8]
        let error: ScreenChunkError
        switch rule {
        case "inconsistent total_chunks":
            bad = Self.chunk(share: 4, index: 1, total: 4, length: 6, data: [3, 4])
            error = .inconsistentChunk(shareID: 4, expected: expected, received: .init(shareID: 4, chunkIndex: 1, totalChunks: 4, totalLength: 6))
        case "inconsistent total_length":
            bad = Self.chunk(share: 4, index: 1, total: 3, length: 7, data: [3, 4])
            error = .inconsistentChunk(shareID: 4, expected: expected, received: .init(shareID: 4, chunkIndex: 1, totalChunks: 3, totalLength: 7))
        case "conflicting duplicate":
            bad = Self.chunk(share: 4, index: 0, total: 3, length: 6, data: [1, 9])
            error = .conflictingDuplicate(shareID: 4, chunkIndex: 0)
        case "overrun":
            bad = Self.chunk(share: 4, index: 1, total: 3, length: 6, data: [3, 4, 5, 6, 7])
            error = .overrun(shareID: 4, receivedBytes: 7, totalLength: 6)
        default:
            #expect(
                try reassembler.receive(Self.chunk(share: 4, index: 1, total: 3, length: 6, data: [3]))
                    == .incomplete(shareID: 4, receivedChunks: 2, totalChunks: 3))
            bad = Self.chunk(share: 4, index: 2, total: 3, length: 6, data: [4])
            error = .lengthMismatch(shareID: 4, receivedBytes: 4, totalLength: 6)
        }
        #expect(throws: error) { try reassembler.receive(bad) }
        #expect(reassembler.statistics.objectsDiscarded == 1)
        #expect(reassembler.objectsInProgress == 0)
        #expect(reassembler.bufferedBytes == 0)
        // The discarded object stays dead: its remaining chunks are stale.
        #expect(try reassembler.receive(Self.chunk(share: 4, index: 2, total: 3, length: 6, data: [5, 6])) == .stale(shareID: 4))
        // The next object is unaffected.
        #expect(try reassembler.receive(Self.chunk(share: 5, index: 0, total: 1, length: 1, data: [42])) == .completed(.init(shareID: 5, bytes: [42])))
    }

    // MARK: Bounds

    @Test("local limits on object size and chunk count")
    func limits() throws {
        var reassembler = try ScreenReassembler(configuration: .init(maximumObjectSize: 1_000, maximumConcurrentObjects: 2, maximumChunksPerObject: 4))
        #expect(throws: ScreenChunkError.objectTooLarge(shareID: 0, totalLength: 1_001, limit: 1_000)) {
            try reassembler.receive(Self.chunk(share: 0, index: 0, total: 1, length: 1_001, data: [1]))
        }
        #expect(throws: ScreenChunkError.tooManyChunks(shareID: 1, totalChunks: 5, limit: 4)) {
            try reassembler.receive(Self.chunk(share: 1, index: 0, total: 5, length: 1_000, data: [1]))
        }
        #expect(reassembler.objectsInProgress == 0)
        #expect(
            try reassembler.receive(Self.chunk(share: 2, index: 0, total: 4, length: 1_000, data: [1]))
                == .incomplete(shareID: 2, receivedChunks: 1, totalChunks: 4))
        #expect(throws: ScreenChunkError.self) { try ScreenReassembler(configuration: .init(maximumConcurrentObjects: 0)) }
    }

    @Test("at most two incomplete objects: newer share ids supersede older ones")
    func concurrentObjects() throws {
        var reassembler = try ScreenReassembler(configuration: .init(maximumObjectSize: 10_000))
        let big = [UInt8](repeating: 1, count: 5_000)
        for share: UInt32 in [0, 1] {
            #expect(
                try reassembler.receive(Self.chunk(share: share, index: 0, total: 2, length: 10_000, data: big))
                    == .incomplete(shareID: share, receivedChunks: 1, totalChunks: 2))
        }
        #expect(reassembler.objectsInProgress == 2)
        #expect(reassembler.bufferedBytes == 10_000)
        // Share 2 arrives: share 0 falls out of the window.
        #expect(
            try reassembler.receive(Self.chunk(share: 2, index: 0, total: 2, length: 10_000, data: big))
                == .incomplete(shareID: 2, receivedChunks: 1, totalChunks: 2))
        #expect(reassembler.objectsInProgress == 2)
        #expect(reassembler.bufferedBytes == 10_000)
        #expect(reassembler.statistics.objectsSuperseded == 1)
        #expect(try reassembler.receive(Self.chunk(share: 0, index: 1, total: 2, length: 10_000, data: big)) == .stale(shareID: 0))
        // Share 1 can still complete.
        let done = try reassembler.receive(Self.chunk(share: 1, index: 1, total: 2, length: 10_000, data: big))
        #expect(done == .completed(.init(shareID: 1, bytes: big + big)))
        #expect(try reassembler.receive(Self.chunk(share: 1, index: 1, total: 2, length: 10_000, data: big)) == .stale(shareID: 1))
        // A jump far ahead supersedes everything older.
        #expect(
            try reassembler.receive(Self.chunk(share: 100, index: 0, total: 2, length: 2, data: [1]))
                == .incomplete(shareID: 100, receivedChunks: 1, totalChunks: 2))
        #expect(reassembler.objectsInProgress == 1)
        #expect(reassembler.statistics.objectsSuperseded == 2)
        // Memory never exceeded two objects' worth.
        #expect(reassembler.bufferedBytes <= 2 * reassembler.configuration.maximumObjectSize)
    }

    @Test("random bytes never trap")
    func fuzz() throws {
        var random = SplitMix64(seed: 5)
        var reassembler = try ScreenReassembler(configuration: .init(maximumObjectSize: 4_096, maximumChunksPerObject: 64))
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<60, using: &random)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if length >= 20 {
                // Keep the fields small often enough to reach the stateful rules.
                bytes[0...2] = [0, 0, 0]
                bytes[3] &= 3
                bytes[4...6] = [0, 0, 0]
                bytes[7] &= 3
                bytes[8...10] = [0, 0, 0]
                bytes[11] &= 3
                bytes[12...18] = [0, 0, 0, 0, 0, 0, 0]
            }
            _ = try? reassembler.receive(bytes)
            #expect(reassembler.objectsInProgress <= 2)
            #expect(reassembler.bufferedBytes <= 2 * 4_096)
        }
    }
}
