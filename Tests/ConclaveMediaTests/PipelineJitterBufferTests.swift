import ConclaveMedia
import Testing

@Suite("Pipeline: jitter buffer")
struct PipelineJitterBufferTests {
    /// A packet whose Opus bytes encode its sequence number.
    static func opus(_ sequence: UInt16) -> [UInt8] { [UInt8(sequence >> 8), UInt8(sequence & 0xFF), 0xAB] }

    @discardableResult
    static func insert(_ buffer: inout JitterBuffer, _ sequence: UInt16) -> JitterBuffer.InsertOutcome {
        let header = AudioPacketHeader(sequence: sequence, timestamp: UInt32(sequence) &* 960, sendTimeMicros: UInt64(sequence) * 20_000)
        let bytes = opus(sequence)
        return try! bytes.withUnsafeBytes { try buffer.insert(header, opus: $0) }
    }

    /// The sequence a pop played, `-1 - seq` for a missing slot, or nil while buffering.
    static func pop(_ buffer: inout JitterBuffer) -> Int? {
        switch buffer.pop() {
        case .packet(let header, let opus):
            #expect(opus == Self.opus(header.sequence))
            return Int(header.sequence)
        case .missing(let sequence):
            return -1 - Int(sequence)
        case .buffering:
            return nil
        }
    }

    static func checkInvariant(_ buffer: JitterBuffer, sourceLocation: SourceLocation = #_sourceLocation) {
        let s = buffer.statistics
        #expect(s.received == s.played + s.late + s.dropped + buffer.bufferedCount, "\(s)", sourceLocation: sourceLocation)
        #expect(s.arrivals == s.received + s.duplicates, sourceLocation: sourceLocation)
        #expect(buffer.bufferedCount <= buffer.configuration.maximumPackets, sourceLocation: sourceLocation)
        #expect(s.lost >= 0, sourceLocation: sourceLocation)
    }

    @Test("buffers the target delay, then plays in order")
    func inOrder() throws {
        var buffer = try JitterBuffer()
        Self.insert(&buffer, 0)
        #expect(Self.pop(&buffer) == nil)
        Self.insert(&buffer, 1)
        #expect(Self.pop(&buffer) == nil)
        Self.insert(&buffer, 2)
        #expect(Self.pop(&buffer) == 0)
        for sequence in UInt16(3)..<20 {
            Self.insert(&buffer, sequence)
            #expect(Self.pop(&buffer) == Int(sequence) - 2)
        }
        #expect(buffer.statistics.played == 18)
        #expect(buffer.statistics.lost == 0)
        Self.checkInvariant(buffer)
    }

    @Test("reordered packets play in sequence order")
    func reorder() throws {
        var buffer = try JitterBuffer()
        for sequence: UInt16 in [2, 0, 1, 4, 3] { Self.insert(&buffer, sequence) }
        var played: [Int?] = []
        for _ in 0..<5 { played.append(Self.pop(&buffer)) }
        #expect(played == [0, 1, 2, 3, 4])
        #expect(Self.pop(&buffer) == nil)  // empty: underrun, no slot consumed
        #expect(buffer.statistics.underruns == 1)
        #expect(buffer.statistics.lost == 0)
    }

    @Test("a missing packet is reported, counted lost, and late if it comes after all")
    func missingAndLate() throws {
        var buffer = try JitterBuffer()
        for sequence: UInt16 in [0, 1, 2, 4, 5] { Self.insert(&buffer, sequence) }
        #expect(Self.pop(&buffer) == 0)
        #expect(Self.pop(&buffer) == 1)
        #expect(Self.pop(&buffer) == 2)
        #expect(Self.pop(&buffer) == -1 - 3)
        #expect(buffer.statistics.lost == 1)
        #expect(buffer.statistics.missing == 1)
        #expect(Self.insert(&buffer, 3) == .late)
        #expect(buffer.statistics.lost == 0)
        #expect(buffer.statistics.late == 1)
        #expect(Self.insert(&buffer, 3) == .duplicate)  // a second copy of the late packet
        #expect(Self.pop(&buffer) == 4)
        Self.checkInvariant(buffer)
    }

    @Test("duplicates are counted whether buffered or already played")
    func duplicates() throws {
        var buffer = try JitterBuffer()
        for sequence: UInt16 in [0, 1, 1, 2, 0] { Self.insert(&buffer, sequence) }
        #expect(buffer.statistics.duplicates == 2)
        #expect(Self.pop(&buffer) == 0)
        #expect(Self.insert(&buffer, 0) == .duplicate)
        #expect(buffer.statistics.duplicates == 3)
        #expect(buffer.statistics.late == 0)
        Self.checkInvariant(buffer)
    }

    @Test("sequence numbers wrap from 65535 to 0")
    func wrap() throws {
        var buffer = try JitterBuffer()
        for sequence: UInt16 in [65_534, 0, 65_535, 2, 1] { Self.insert(&buffer, sequence) }
        var played: [Int?] = []
        for _ in 0..<5 { played.append(Self.pop(&buffer)) }
        #expect(played == [65_534, 65_535, 0, 1, 2])
        #expect(Self.insert(&buffer, 65_535) == .duplicate)
        // Slot 3 missing across the wrap, its packet late.
        Self.insert(&buffer, 4)
        Self.insert(&buffer, 5)
        #expect(Self.pop(&buffer) == -1 - 3)
        #expect(Self.insert(&buffer, 3) == .late)
        #expect(buffer.statistics.late == 1)
        #expect(buffer.statistics.lost == 0)
        Self.checkInvariant(buffer)
    }

    @Test("memory is bounded: beyond maximumPackets the oldest is dropped and counted")
    func bounded() throws {
        var buffer = try JitterBuffer()
        for sequence in UInt16(0)..<15 { Self.insert(&buffer, sequence) }
        #expect(buffer.bufferedCount == 10)
        #expect(buffer.statistics.dropped == 5)
        #expect(Self.insert(&buffer, 2) == .dropped)  // older than everything kept
        #expect(Self.pop(&buffer) == 5)
        Self.checkInvariant(buffer)

        // While playing, a packet beyond the window moves it forward.
        var playing = try JitterBuffer()
        for sequence in UInt16(0)..<3 { Self.insert(&playing, sequence) }
        #expect(Self.pop(&playing) == 0)  // next is 1; 1 and 2 buffered
        #expect(Self.insert(&playing, 30) == .buffered)
        // Window is now 21..<31: 1 and 2 dropped, 3...20 lost.
        #expect(playing.statistics.dropped == 2)
        #expect(playing.statistics.lost == 18)
        #expect(playing.nextSequence == 21)
        #expect(playing.bufferedCount == 1)
        Self.checkInvariant(playing)
    }

    @Test("a sender that pauses causes an underrun, not losses")
    func pause() throws {
        var buffer = try JitterBuffer()
        for sequence in UInt16(0)..<5 { Self.insert(&buffer, sequence) }
        for expected in 0..<5 { #expect(Self.pop(&buffer) == expected) }
        for _ in 0..<20 { #expect(Self.pop(&buffer) == nil) }
        #expect(buffer.statistics.underruns == 1)
        for sequence in UInt16(5)..<8 { Self.insert(&buffer, sequence) }
        #expect(Self.pop(&buffer) == 5)
        #expect(buffer.statistics.lost == 0)
        #expect(buffer.statistics.missing == 0)
    }

    @Test("playout resumes after an underrun, counting the skipped slots as lost")
    func resumeAfterGap() throws {
        var buffer = try JitterBuffer()
        for sequence in UInt16(0)..<3 { Self.insert(&buffer, sequence) }
        for expected in 0..<3 { #expect(Self.pop(&buffer) == expected) }
        #expect(Self.pop(&buffer) == nil)
        for sequence in UInt16(6)..<9 { Self.insert(&buffer, sequence) }
        #expect(Self.pop(&buffer) == 6)
        #expect(buffer.statistics.lost == 3)
        #expect(Self.insert(&buffer, 4) == .late)
        #expect(buffer.statistics.lost == 2)
        Self.checkInvariant(buffer)
    }

    @Test("packets that waited the target delay start playout even below the target count")
    func startByWaiting() throws {
        var buffer = try JitterBuffer()
        Self.insert(&buffer, 7)
        #expect(Self.pop(&buffer) == nil)
        #expect(Self.pop(&buffer) == nil)
        #expect(Self.pop(&buffer) == nil)
        #expect(Self.pop(&buffer) == 7)
    }

    @Test("a persistently deep buffer drops its oldest packet to catch up")
    func catchUp() throws {
        var buffer = try JitterBuffer(configuration: .init(targetDelayPackets: 3, maximumPackets: 10, catchUpAfterPops: 5))
        for sequence in UInt16(0)..<8 { Self.insert(&buffer, sequence) }
        var next: UInt16 = 8
        var played: [Int?] = []
        for _ in 0..<5 {
            played.append(Self.pop(&buffer))
            Self.insert(&buffer, next)
            next += 1
        }
        // 5 pops with 7 > 3 buffered after each: slot 5 is dropped after the fifth.
        #expect(played == [0, 1, 2, 3, 4])
        #expect(buffer.statistics.dropped == 1)
        #expect(Self.pop(&buffer) == 6)
        Self.checkInvariant(buffer)
    }

    @Test("a restarted stream is detected after three consecutive far packets")
    func resynchronisation() throws {
        var buffer = try JitterBuffer()
        for sequence in UInt16(500)..<503 { Self.insert(&buffer, sequence) }
        #expect(Self.pop(&buffer) == 500)
        // A lone straggler far behind is late, not a restart.
        #expect(Self.insert(&buffer, 100) == .late)
        #expect(buffer.statistics.resynchronisations == 0)
        #expect(Self.insert(&buffer, 0) == .late)
        #expect(Self.insert(&buffer, 1) == .late)
        #expect(Self.insert(&buffer, 2) == .buffered)
        #expect(buffer.statistics.resynchronisations == 1)
        #expect(buffer.statistics.dropped == 2)  // 501 and 502
        Self.insert(&buffer, 3)
        Self.insert(&buffer, 4)
        #expect(Self.pop(&buffer) == 2)
        Self.checkInvariant(buffer)
    }

    @Test("malformed input and bad configurations are typed errors")
    func errors() throws {
        var buffer = try JitterBuffer()
        #expect(throws: AudioPacketError.truncatedHeader(length: 5)) { try buffer.insert(plaintext: [1, 2, 3, 4, 5]) }
        #expect(throws: AudioPacketError.emptyOpusPacket) {
            try [UInt8]().withUnsafeBytes { try buffer.insert(AudioPacketHeader(sequence: 0, timestamp: 0, sendTimeMicros: 0), opus: $0) }
        }
        #expect(buffer.statistics == JitterBuffer.Statistics())
        for bad in [
            JitterBuffer.Configuration(targetDelayPackets: 0), .init(targetDelayPackets: 11), .init(maximumPackets: 65),
            .init(targetDelayPackets: 1, maximumPackets: 0), .init(catchUpAfterPops: 0),
        ] {
            #expect(throws: JitterBufferError.self) { try JitterBuffer(configuration: bad) }
        }
    }

    @Test("random traffic never traps and keeps the accounting invariant")
    func fuzz() throws {
        var random = SplitMix64(seed: 2_024)
        for round in 0..<20 {
            var buffer = try JitterBuffer(
                configuration: .init(targetDelayPackets: 1 + round % 4, maximumPackets: 4 + round % 8, catchUpAfterPops: 1 + round % 10))
            var base = UInt16.random(in: 0...UInt16.max, using: &random)
            for _ in 0..<3_000 {
                switch UInt64.random(in: 0..<10, using: &random) {
                case 0..<5:
                    let jitter = Int.random(in: -20...20, using: &random)
                    Self.insert(&buffer, base &+ UInt16(truncatingIfNeeded: jitter))
                case 5:
                    Self.insert(&buffer, UInt16.random(in: 0...UInt16.max, using: &random))
                default:
                    _ = Self.pop(&buffer)
                    base &+= 1
                }
                #expect(buffer.bufferedCount <= buffer.configuration.maximumPackets)
            }
            Self.checkInvariant(buffer)
        }
    }
}
