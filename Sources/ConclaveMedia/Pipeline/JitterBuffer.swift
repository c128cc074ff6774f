/// Why a ``JitterBuffer`` (or a ``ReceiveMixer``) configuration is rejected.
public enum JitterBufferError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let reason): return "invalid jitter buffer configuration: \(reason)"
        }
    }
}

/// Puts one sender's audio packets back in sequence order and releases one
/// per 20 ms playout tick, a fixed number of packets behind the newest.
///
/// A value-type state machine: time is the caller's ``pop(into:)`` calls
/// (one per 20 ms), packets come in through ``insert(_:opus:)``. Memory is
/// fixed at creation: ``Configuration/maximumPackets`` slots of
/// ``AudioPacket/maximumOpusPacketSize`` bytes; inserting and popping copy
/// bytes into and out of those slots and never allocate.
///
/// ## Playout
/// - **Buffering.** At first, and again after the buffer ran empty, `pop`
///   returns ``PopResult/buffering`` (the caller plays nothing for this
///   sender) until ``Configuration/targetDelayPackets`` packets are buffered,
///   or packets have waited that many pops. Playout then starts at the
///   lowest buffered sequence number.
/// - **Playing.** Each `pop` plays slot `next` and advances it by one:
///   ``PopResult/packet(_:length:)`` if it arrived, ``PopResult/missing(sequence:)``
///   if not (the caller conceals it with Opus PLC). If the buffer is empty,
///   `pop` consumes no slot: it returns ``PopResult/buffering`` and playout
///   goes back to buffering (an underrun; a sender that pauses causes one).
///   Slots skipped when playout resumes count as lost.
/// - **Bounded depth.** Buffered packets always lie in the window
///   `next ..< next + maximumPackets`. A packet beyond it moves the window
///   forward: packets that fall out are dropped, empty slots count as lost.
///   When more than the target stays buffered for
///   ``Configuration/catchUpAfterPops`` pops in a row, the oldest slot is
///   dropped so the delay returns to the target.
///
/// ## Classification and counters
/// Sequence numbers compare with wrap-around (``SequenceNumber``). A packet
/// for a slot already played is a **duplicate** if that slot was played
/// (or dropped) with a packet, **late** if it was played as missing (it then
/// stops counting as **lost**). The last 64 slots are remembered; a packet
/// older than that counts as late. A packet at least
/// ``resynchronisationDistance`` ahead, or more than 64 behind, is discarded
/// (counted late or dropped), unless three such packets arrive in a row
/// with consecutive sequence numbers: then the sender has restarted its
/// stream and the buffer starts over from them (a *resynchronisation*).
///
/// Invariant: `received == played + late + dropped + bufferedCount`.
public struct JitterBuffer: Sendable {
    // MARK: Configuration

    /// Depth and bounds of a jitter buffer.
    public struct Configuration: Sendable, Equatable {
        /// Packets buffered before playout starts: the playout delay in
        /// 20 ms packets (default 3 = 60 ms).
        public var targetDelayPackets: Int
        /// Most packets held at once (default 10 = 200 ms); ≤ ``packetLimit``.
        public var maximumPackets: Int
        /// Pops in a row with more than the target buffered before the oldest
        /// slot is dropped to catch up (default 50 = 1 s).
        public var catchUpAfterPops: Int

        /// The largest ``maximumPackets`` accepted.
        public static let packetLimit = 64

        public init(targetDelayPackets: Int = 3, maximumPackets: Int = 10, catchUpAfterPops: Int = 50) {
            self.targetDelayPackets = targetDelayPackets
            self.maximumPackets = maximumPackets
            self.catchUpAfterPops = catchUpAfterPops
        }

        /// Throws unless 1 ≤ target ≤ maximum ≤ ``packetLimit`` and catch-up ≥ 1.
        public func validate() throws(JitterBufferError) {
            guard (1...Self.packetLimit).contains(maximumPackets) else {
                throw .invalidConfiguration("maximumPackets \(maximumPackets) is not in 1...\(Self.packetLimit)")
            }
            guard (1...maximumPackets).contains(targetDelayPackets) else {
                throw .invalidConfiguration("targetDelayPackets \(targetDelayPackets) is not in 1...\(maximumPackets) (maximumPackets)")
            }
            guard catchUpAfterPops >= 1 else {
                throw .invalidConfiguration("catchUpAfterPops \(catchUpAfterPops) must be at least 1")
            }
        }
    }

    /// Counters since creation. See the type's documentation for the terms.
    public struct Statistics: Sendable, Equatable {
        /// Valid packets handed to ``JitterBuffer/insert(_:opus:)``, duplicates included.
        public var arrivals = 0
        /// Distinct packets: arrivals that were not duplicates.
        public var received = 0
        /// Packets returned by `pop`.
        public var played = 0
        /// Slots played or skipped with no packet, whose packet has not arrived since.
        public var lost = 0
        /// Packets that arrived after their slot was played or skipped.
        public var late = 0
        /// Copies of a packet already buffered, played or dropped.
        public var duplicates = 0
        /// Packets that arrived in time but were discarded to bound the delay
        /// (window moved, catch-up, resynchronisation, stray far packets).
        public var dropped = 0
        /// `pop` results that were ``PopResult/missing(sequence:)``.
        public var missing = 0
        /// Times the buffer ran empty while playing.
        public var underruns = 0
        /// Times the sender's stream was detected as restarted.
        public var resynchronisations = 0

        public init() {}
    }

    /// What ``JitterBuffer/insert(_:opus:)`` did with a packet.
    public enum InsertOutcome: Sendable, Equatable {
        /// Stored for playout.
        case buffered
        /// Already buffered, played or dropped: ignored.
        case duplicate
        /// Its slot was already played or skipped: ignored.
        case late
        /// Discarded to respect the bounds.
        case dropped
    }

    /// One playout tick's result.
    public enum PopResult: Sendable, Equatable {
        /// The next packet; its Opus bytes are the first `length` bytes of the output buffer.
        case packet(AudioPacketHeader, length: Int)
        /// The next slot's packet has not arrived: conceal it.
        case missing(sequence: UInt16)
        /// Nothing to play yet (start, or after an underrun).
        case buffering
    }

    /// ``PopResult`` with the Opus bytes in an array, from ``JitterBuffer/pop()``.
    public enum Popped: Sendable, Equatable {
        case packet(AudioPacketHeader, opus: [UInt8])
        case missing(sequence: UInt16)
        case buffering
    }

    /// Sequence distance (ahead) at which a packet is treated as a possible
    /// stream restart rather than a gap: 1 000 packets, 20 s.
    public static let resynchronisationDistance = 1_000
    /// Played slots remembered to tell late packets from duplicates.
    public static let historyLength = 64
    /// Consecutive far packets that confirm a stream restart.
    public static let resynchronisationRun = 3

    // MARK: State

    public let configuration: Configuration
    public private(set) var statistics = Statistics()
    /// Packets currently held.
    public private(set) var bufferedCount = 0

    /// Slot table: sequence, header and Opus length (0 = free) per slot; the
    /// bytes of slot i are `storage[i * slotSize ..< i * slotSize + length]`.
    private var slotSequences: [UInt16]
    private var slotHeaders: [AudioPacketHeader]
    private var slotLengths: [Int]
    private var storage: [UInt8]
    private static let slotSize = AudioPacket.maximumOpusPacketSize

    /// Whether playout has ever started; `next` is meaningful only then.
    private var hasStarted = false
    private var isPlaying = false
    /// The slot the next `pop` plays.
    private var next: UInt16 = 0
    /// Bit i describes slot `next − 1 − i`: played/dropped with a packet, or played/skipped without.
    private var receivedHistory: UInt64 = 0
    private var missedHistory: UInt64 = 0
    private var popsOverTarget = 0
    private var bufferingPops = 0
    /// Far packets seen in a row with consecutive sequence numbers.
    private var farRunLast: UInt16 = 0
    private var farRunLength = 0

    /// The sequence number the next `pop` will play, once playout has started.
    public var nextSequence: UInt16? { hasStarted ? next : nil }

    // MARK: Life cycle

    /// Creates an empty buffer; allocates all its memory now.
    public init(configuration: Configuration = Configuration()) throws(JitterBufferError) {
        try configuration.validate()
        self.configuration = configuration
        let slots = configuration.maximumPackets
        slotSequences = [UInt16](repeating: 0, count: slots)
        slotHeaders = [AudioPacketHeader](repeating: AudioPacketHeader(sequence: 0, timestamp: 0, sendTimeMicros: 0), count: slots)
        slotLengths = [Int](repeating: 0, count: slots)
        storage = [UInt8](repeating: 0, count: slots * Self.slotSize)
    }

    // MARK: Inserting

    /// Inserts one packet: its header and Opus bytes (copied).
    ///
    /// - Throws: ``AudioPacketError/emptyOpusPacket`` or
    ///   ``AudioPacketError/tooLong(length:limit:)`` for an Opus packet
    ///   outside 1…``AudioPacket/maximumOpusPacketSize`` bytes; nothing is counted.
    @discardableResult
    public mutating func insert(_ header: AudioPacketHeader, opus: UnsafeRawBufferPointer) throws(AudioPacketError) -> InsertOutcome {
        guard !opus.isEmpty else { throw .emptyOpusPacket }
        guard opus.count <= AudioPacket.maximumOpusPacketSize else {
            throw .tooLong(length: AudioPacket.headerSize + opus.count, limit: AudioPacket.maximumPlaintextSize)
        }
        statistics.arrivals += 1
        let sequence = header.sequence

        if !hasStarted {
            return insertBeforeStart(header, opus: opus)
        }

        let distance = SequenceNumber.distance(from: next, to: sequence)
        if distance >= Self.resynchronisationDistance || distance < -Self.historyLength {
            return insertFar(header, opus: opus, behind: distance < 0)
        }
        farRunLength = 0

        if distance < 0 {
            let bit = UInt64(1) << UInt64(-distance - 1)
            if receivedHistory & bit != 0 {
                statistics.duplicates += 1
                return .duplicate
            }
            if missedHistory & bit != 0 {
                missedHistory &= ~bit
                statistics.lost -= 1
            }
            // Remembered as received so a further copy is a duplicate. A slot
            // with neither bit lies before playout started: late as well.
            receivedHistory |= bit
            statistics.received += 1
            statistics.late += 1
            return .late
        }

        if findSlot(sequence) != nil {
            statistics.duplicates += 1
            return .duplicate
        }
        statistics.received += 1
        if distance >= configuration.maximumPackets {
            // Move the window so that `sequence` is its last slot.
            skip(to: sequence &- UInt16(configuration.maximumPackets - 1))
        }
        // Every buffered packet is in the window and this slot is free, so a
        // free slot exists.
        guard let free = freeSlot() else { preconditionFailure("jitter buffer window holds more packets than slots") }
        store(header, opus: opus, in: free)
        return .buffered
    }

    /// Parses an audio plaintext (``AudioPacket``) and inserts it.
    @discardableResult
    public mutating func insert(plaintext: UnsafeRawBufferPointer) throws(AudioPacketError) -> InsertOutcome {
        let (header, opus) = try AudioPacket.decode(plaintext)
        return try insert(header, opus: opus)
    }

    /// Array convenience for ``insert(plaintext:)``.
    @discardableResult
    public mutating func insert(plaintext: [UInt8]) throws(AudioPacketError) -> InsertOutcome {
        try plaintext.withUnsafeBufferPointer { bytes throws(AudioPacketError) in
            try insert(plaintext: UnsafeRawBufferPointer(bytes))
        }
    }

    /// Before the first playout there is no `next`: packets are kept up to
    /// the slot count (dropping the lowest), and a packet far from the
    /// buffered ones replaces them.
    private mutating func insertBeforeStart(_ header: AudioPacketHeader, opus: UnsafeRawBufferPointer) -> InsertOutcome {
        let sequence = header.sequence
        if let lowest = lowestSlot() {
            let distance = SequenceNumber.distance(from: slotSequences[lowest], to: sequence)
            if distance >= Self.resynchronisationDistance || distance <= -Self.resynchronisationDistance {
                statistics.dropped += bufferedCount
                clearSlots()
            } else if findSlot(sequence) != nil {
                statistics.duplicates += 1
                return .duplicate
            }
        }
        statistics.received += 1
        if bufferedCount == configuration.maximumPackets {
            let lowest = lowestSlot()!
            statistics.dropped += 1
            if SequenceNumber.distance(from: slotSequences[lowest], to: sequence) < 0 {
                return .dropped
            }
            removeSlot(lowest)
        }
        store(header, opus: opus, in: freeSlot()!)
        return .buffered
    }

    /// A packet far ahead of or behind playout: a straggler, or the first of
    /// a restarted stream. Three in a row, consecutive, mean a restart.
    private mutating func insertFar(_ header: AudioPacketHeader, opus: UnsafeRawBufferPointer, behind: Bool) -> InsertOutcome {
        let sequence = header.sequence
        if farRunLength > 0 && sequence == farRunLast &+ 1 {
            farRunLength += 1
        } else {
            farRunLength = 1
        }
        farRunLast = sequence
        guard farRunLength >= Self.resynchronisationRun else {
            statistics.received += 1
            if behind {
                statistics.late += 1
                return .late
            }
            statistics.dropped += 1
            return .dropped
        }
        // Restart: forget the old stream and begin again with this packet.
        statistics.resynchronisations += 1
        statistics.dropped += bufferedCount
        clearSlots()
        hasStarted = false
        isPlaying = false
        receivedHistory = 0
        missedHistory = 0
        popsOverTarget = 0
        bufferingPops = 0
        farRunLength = 0
        return insertBeforeStart(header, opus: opus)
    }

    // MARK: Playout

    /// Plays the next slot; call once per 20 ms. Copies the Opus bytes into
    /// the start of `output` without allocating.
    ///
    /// - Precondition: `output.count >= AudioPacket.maximumOpusPacketSize`.
    public mutating func pop(into output: UnsafeMutableRawBufferPointer) -> PopResult {
        precondition(output.count >= Self.slotSize, "pop needs an output buffer of AudioPacket.maximumOpusPacketSize bytes")
        if !isPlaying {
            guard bufferedCount > 0 else {
                bufferingPops = 0
                return .buffering
            }
            guard
                bufferedCount >= configuration.targetDelayPackets
                    || bufferingPops >= configuration.targetDelayPackets
            else {
                bufferingPops += 1
                return .buffering
            }
            let lowest = slotSequences[lowestSlot()!]
            if hasStarted {
                skip(to: lowest)  // slots between the underrun and now were lost
            } else {
                hasStarted = true
                next = lowest
                // Packets kept before the start may span more than the window.
                if let highest = highestSlot() {
                    let span = SequenceNumber.distance(from: next, to: slotSequences[highest])
                    if span >= configuration.maximumPackets {
                        skip(to: slotSequences[highest] &- UInt16(configuration.maximumPackets - 1))
                    }
                }
            }
            isPlaying = true
            bufferingPops = 0
            popsOverTarget = 0
        }

        guard bufferedCount > 0 else {
            isPlaying = false
            statistics.underruns += 1
            return .buffering
        }

        let result: PopResult
        if let slot = findSlot(next) {
            let length = slotLengths[slot]
            storage.withUnsafeBytes { bytes in
                let start = slot * Self.slotSize
                output.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]))
            }
            result = .packet(slotHeaders[slot], length: length)
            removeSlot(slot)
            statistics.played += 1
            advance(received: true)
        } else {
            result = .missing(sequence: next)
            statistics.missing += 1
            statistics.lost += 1
            advance(received: false)
        }

        if bufferedCount > configuration.targetDelayPackets {
            popsOverTarget += 1
            if popsOverTarget >= configuration.catchUpAfterPops {
                skip(to: next &+ 1)
                popsOverTarget = 0
            }
        } else {
            popsOverTarget = 0
        }
        return result
    }

    /// ``pop(into:)`` with the Opus bytes in a new array. Allocates.
    public mutating func pop() -> Popped {
        var bytes = [UInt8](repeating: 0, count: Self.slotSize)
        let result = bytes.withUnsafeMutableBytes { pop(into: $0) }
        switch result {
        case .packet(let header, let length):
            return .packet(header, opus: Array(bytes[..<length]))
        case .missing(let sequence):
            return .missing(sequence: sequence)
        case .buffering:
            return .buffering
        }
    }

    // MARK: Slots

    private mutating func advance(received: Bool) {
        receivedHistory = receivedHistory << 1 | (received ? 1 : 0)
        missedHistory = missedHistory << 1 | (received ? 0 : 1)
        next &+= 1
    }

    /// Moves `next` forward to `target` (at most ``resynchronisationDistance``
    /// ahead): buffered packets passed over are dropped, empty slots are lost.
    private mutating func skip(to target: UInt16) {
        var remaining = SequenceNumber.distance(from: next, to: target)
        while remaining > 0 {
            if let slot = findSlot(next) {
                removeSlot(slot)
                statistics.dropped += 1
                advance(received: true)
            } else {
                statistics.lost += 1
                advance(received: false)
            }
            remaining -= 1
        }
    }

    private mutating func store(_ header: AudioPacketHeader, opus: UnsafeRawBufferPointer, in slot: Int) {
        slotSequences[slot] = header.sequence
        slotHeaders[slot] = header
        slotLengths[slot] = opus.count
        storage.withUnsafeMutableBytes { bytes in
            let start = slot * Self.slotSize
            UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + opus.count)]).copyMemory(from: opus)
        }
        bufferedCount += 1
    }

    private mutating func removeSlot(_ slot: Int) {
        slotLengths[slot] = 0
        bufferedCount -= 1
    }

    private mutating func clearSlots() {
        for slot in slotLengths.indices { slotLengths[slot] = 0 }
        bufferedCount = 0
    }

    private func findSlot(_ sequence: UInt16) -> Int? {
        for slot in slotLengths.indices where slotLengths[slot] > 0 && slotSequences[slot] == sequence {
            return slot
        }
        return nil
    }

    private func freeSlot() -> Int? {
        slotLengths.firstIndex(of: 0)
    }

    /// The occupied slot with the lowest (or, with `highest`, the highest)
    /// sequence number, comparing with wrap-around relative to any one of them.
    private func extremeSlot(highest: Bool) -> Int? {
        var best: Int?
        var bestDistance = 0
        var reference: UInt16 = 0
        for slot in slotLengths.indices where slotLengths[slot] > 0 {
            guard best != nil else {
                best = slot
                reference = slotSequences[slot]
                continue
            }
            let distance = SequenceNumber.distance(from: reference, to: slotSequences[slot])
            if highest ? distance > bestDistance : distance < bestDistance {
                best = slot
                bestDistance = distance
            }
        }
        return best
    }

    private func lowestSlot() -> Int? { extremeSlot(highest: false) }
    private func highestSlot() -> Int? { extremeSlot(highest: true) }
}
