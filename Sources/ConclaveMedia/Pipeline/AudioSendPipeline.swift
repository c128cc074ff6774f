/// Settings of an ``AudioSendPipeline``. The Opus stream itself is fixed by
/// PROTOCOL.md 2.6: mono, 48 kHz, 20 ms packets, VoIP mode.
public struct AudioSendConfiguration: Sendable, Equatable {
    /// Opus target bitrate (default ``OpusBitrate/auto``).
    public var bitrate: OpusBitrate
    /// Opus complexity 0…10 (default 10).
    public var complexity: Int
    /// Opus in-band FEC (default off).
    public var inbandFEC: Bool
    /// Expected loss for FEC, 0…100 % (default 0).
    public var packetLossPercentage: Int
    /// Sequence number of the first packet (default 0).
    public var initialSequence: UInt16
    /// Timestamp of the first packet (default 0).
    public var initialTimestamp: UInt32
    /// Load-test mode: when set, encode this many frames of the source once,
    /// at creation, and cycle through those Opus packets forever, each with a
    /// fresh header. `nil` (default) encodes every packet live.
    public var reusedPacketCount: Int?

    /// The most packets the reuse mode pre-encodes: 3 000, one minute of audio.
    public static let maximumReusedPacketCount = 3_000

    public init(
        bitrate: OpusBitrate = .auto, complexity: Int = 10, inbandFEC: Bool = false, packetLossPercentage: Int = 0,
        initialSequence: UInt16 = 0, initialTimestamp: UInt32 = 0, reusedPacketCount: Int? = nil
    ) {
        self.bitrate = bitrate
        self.complexity = complexity
        self.inbandFEC = inbandFEC
        self.packetLossPercentage = packetLossPercentage
        self.initialSequence = initialSequence
        self.initialTimestamp = initialTimestamp
        self.reusedPacketCount = reusedPacketCount
    }

    /// The encoder configuration this pipeline uses.
    public var encoderConfiguration: OpusEncoderConfiguration {
        OpusEncoderConfiguration(
            sampleRate: AudioFormat.productSampleRate, channels: 1, frameDuration: .ms20, application: .voip,
            bitrate: bitrate, inbandFEC: inbandFEC, packetLossPercentage: packetLossPercentage,
            dtx: false, complexity: complexity)
    }
}

/// Why an ``AudioSendPipeline`` could not be created or produce a packet.
public enum AudioSendError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The Opus encoder rejected its configuration or failed to encode.
    case opus(OpusError)
    /// The caller's output buffer is smaller than ``AudioPacket/maximumPlaintextSize``.
    case outputBufferTooSmall(required: Int, available: Int)
    /// ``AudioSendConfiguration/reusedPacketCount`` outside 1…``AudioSendConfiguration/maximumReusedPacketCount``.
    case reusedPacketCountOutOfRange(Int, limit: Int)
    /// Reuse mode: the source ended before producing a single frame.
    case sourceEmpty

    public var description: String {
        switch self {
        case .opus(let error):
            return "audio send pipeline: \(error)"
        case .outputBufferTooSmall(let required, let available):
            return "audio send pipeline output buffer too small: \(required) bytes needed, \(available) available"
        case .reusedPacketCountOutOfRange(let count, let limit):
            return "audio send pipeline: \(count) reused packets is out of range; use 1...\(limit)"
        case .sourceEmpty:
            return "audio send pipeline: the source produced no audio to pre-encode"
        }
    }
}

/// Source → Opus encoder → audio plaintexts (``AudioPacket``) with sequence
/// number, timestamp and send time: what a client encrypts and sends every
/// 20 ms.
///
/// The caller owns the clock: it calls ``nextPacket(nowMicros:into:)`` once
/// per 20 ms with its monotonic time in microseconds, which goes into
/// `send_time_us`. Each call advances `sequence` by 1 and `timestamp` by 960,
/// both wrapping. libopus is given at most ``AudioPacket/maximumOpusPacketSize``
/// (1 453) bytes per packet, so every plaintext fits the 1 467-byte limit of
/// 2.6 whatever the SFrame header.
///
/// Not `Sendable`: it owns an ``OpusEncoder``; one task drives it.
public final class AudioSendPipeline {
    /// A buffer of this many bytes always holds one packet.
    public static let maximumPacketSize = AudioPacket.maximumPlaintextSize

    // MARK: State

    private var source: AudioSource
    private let encoder: OpusEncoder?
    /// One frame of PCM, reused.
    private var pcm: [Int16]
    /// Reuse mode: the pre-encoded Opus packets, back to back, and their ranges.
    private let reusedBytes: [UInt8]
    private let reusedRanges: [Range<Int>]
    private var reusedIndex = 0

    /// Sequence number the next packet will carry.
    public private(set) var nextSequence: UInt16
    /// Timestamp the next packet will carry.
    public private(set) var nextTimestamp: UInt32
    /// Packets produced so far.
    public private(set) var packetsProduced: UInt64 = 0
    /// The configuration the pipeline was created with.
    public let configuration: AudioSendConfiguration

    /// Whether packets are pre-encoded and cycled (load-test mode).
    public var isReusingPackets: Bool { !reusedRanges.isEmpty }
    /// Number of distinct pre-encoded packets in reuse mode (0 otherwise).
    public var reusedPacketCount: Int { reusedRanges.count }
    /// Whether a non-looping WAV source has ended; no more packets come.
    /// Never true in reuse mode.
    public var isFinished: Bool { !isReusingPackets && source.isFinished }

    // MARK: Life cycle

    /// Creates the encoder and, in reuse mode, pre-encodes the packets.
    ///
    /// - Throws: ``AudioSendError/opus(_:)`` for an invalid bitrate,
    ///   complexity or loss percentage; in reuse mode
    ///   ``AudioSendError/reusedPacketCountOutOfRange(_:limit:)`` or
    ///   ``AudioSendError/sourceEmpty``. A non-looping source that ends
    ///   before the count is reached leaves fewer (but at least one) packets.
    public init(source: AudioSource, configuration: AudioSendConfiguration = AudioSendConfiguration()) throws(AudioSendError) {
        self.configuration = configuration
        self.nextSequence = configuration.initialSequence
        self.nextTimestamp = configuration.initialTimestamp
        var source = source
        var pcm = [Int16](repeating: 0, count: AudioSource.frameSamples)
        let encoder: OpusEncoder
        do {
            encoder = try OpusEncoder(configuration: configuration.encoderConfiguration)
        } catch {
            throw .opus(error)
        }
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        if let count = configuration.reusedPacketCount {
            let limit = AudioSendConfiguration.maximumReusedPacketCount
            guard (1...limit).contains(count) else { throw .reusedPacketCountOutOfRange(count, limit: limit) }
            var packet = [UInt8](repeating: 0, count: AudioPacket.maximumOpusPacketSize)
            for _ in 0..<count {
                guard pcm.withUnsafeMutableBufferPointer({ source.nextFrame(into: $0) }) else { break }
                let length = try Self.encode(pcm, with: encoder, into: &packet)
                ranges.append(bytes.count..<(bytes.count + length))
                bytes += packet[..<length]
            }
            guard !ranges.isEmpty else { throw .sourceEmpty }
        }
        self.source = source
        self.pcm = pcm
        self.encoder = ranges.isEmpty ? encoder : nil
        self.reusedBytes = bytes
        self.reusedRanges = ranges
    }

    private static func encode(_ pcm: [Int16], with encoder: OpusEncoder, into packet: inout [UInt8]) throws(AudioSendError) -> Int {
        do {
            return try pcm.withUnsafeBufferPointer { input throws(OpusError) in
                try packet.withUnsafeMutableBufferPointer { output throws(OpusError) in
                    try encoder.encode(input, into: UnsafeMutableRawBufferPointer(output))
                }
            }
        } catch {
            throw .opus(error)
        }
    }

    // MARK: Producing packets

    /// Writes the next audio plaintext (header ‖ Opus packet) into the start
    /// of `output` without allocating.
    ///
    /// - Parameters:
    ///   - nowMicros: the sender's monotonic clock, written as `send_time_us`.
    ///   - output: at least ``maximumPacketSize`` bytes.
    /// - Returns: the plaintext length, or `nil` when a non-looping WAV source
    ///   has ended (nothing is written and the sequence does not advance).
    /// - Throws: ``AudioSendError/outputBufferTooSmall(required:available:)``
    ///   or ``AudioSendError/opus(_:)``; the sequence does not advance.
    public func nextPacket(nowMicros: UInt64, into output: UnsafeMutableRawBufferPointer) throws(AudioSendError) -> Int? {
        guard output.count >= Self.maximumPacketSize else {
            throw .outputBufferTooSmall(required: Self.maximumPacketSize, available: output.count)
        }
        let opusSpace = UnsafeMutableRawBufferPointer(
            rebasing: output[AudioPacket.headerSize..<(AudioPacket.headerSize + AudioPacket.maximumOpusPacketSize)])
        let opusLength: Int
        if isReusingPackets {
            let range = reusedRanges[reusedIndex]
            reusedIndex = reusedIndex + 1 == reusedRanges.count ? 0 : reusedIndex + 1
            reusedBytes.withUnsafeBytes { bytes in
                opusSpace.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[range]))
            }
            opusLength = range.count
        } else {
            guard let encoder else { preconditionFailure("live mode without an encoder") }
            let produced = pcm.withUnsafeMutableBufferPointer { source.nextFrame(into: $0) }
            guard produced else { return nil }
            do {
                opusLength = try pcm.withUnsafeBufferPointer { input throws(OpusError) in
                    try encoder.encode(input, into: opusSpace)
                }
            } catch {
                throw .opus(error)
            }
        }
        let header = AudioPacketHeader(sequence: nextSequence, timestamp: nextTimestamp, sendTimeMicros: nowMicros)
        // Cannot fail: the buffer was checked above.
        try? AudioPacket.writeHeader(header, into: output)
        nextSequence &+= 1
        nextTimestamp &+= AudioPacket.samplesPerPacket
        packetsProduced += 1
        return AudioPacket.headerSize + opusLength
    }

    /// The next audio plaintext as a new array, or `nil` when a non-looping
    /// source has ended. Allocates; use ``nextPacket(nowMicros:into:)`` on a hot path.
    public func nextPacket(nowMicros: UInt64) throws(AudioSendError) -> [UInt8]? {
        var output = [UInt8](repeating: 0, count: Self.maximumPacketSize)
        let length = try output.withUnsafeMutableBufferPointer { buffer throws(AudioSendError) in
            try nextPacket(nowMicros: nowMicros, into: UnsafeMutableRawBufferPointer(buffer))
        }
        guard let length else { return nil }
        output.removeSubrange(length...)
        return output
    }
}
