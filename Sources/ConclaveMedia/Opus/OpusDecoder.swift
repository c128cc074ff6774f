import COpus

/// An Opus decoder: one libopus `OpusDecoder` state, freed when this object is.
///
/// Not `Sendable`, for the same reason as ``OpusEncoder``: the state is
/// per-stream, order-dependent and not thread-safe. Use one decoder per
/// remote participant.
///
/// The decoder accepts packets of any duration libopus supports (2.5–120 ms),
/// regardless of the sender's frame duration.
public final class OpusDecoder {
    /// The longest audio one Opus packet can carry, in milliseconds (RFC 6716 §3.2.5).
    public static let maximumPacketDurationMilliseconds = 120

    private let handle: OpaquePointer

    /// Output sample rate (Hz).
    public let sampleRate: Int
    /// Output channel count (1 or 2). libopus up- or down-mixes if the packet
    /// was encoded with the other count.
    public let channels: Int

    /// Samples per channel in the longest possible packet (5760 at 48 kHz).
    /// An output buffer of `maximumSamplesPerChannel * channels` never fails
    /// for being too small.
    public var maximumSamplesPerChannel: Int { sampleRate / 1000 * Self.maximumPacketDurationMilliseconds }

    /// Creates a decoder.
    ///
    /// - Throws: ``OpusError/unsupportedSampleRate(_:)``,
    ///   ``OpusError/unsupportedChannelCount(_:)`` or a libopus failure.
    public init(sampleRate: Int = AudioFormat.productSampleRate, channels: Int) throws(OpusError) {
        guard AudioFormat.isSupportedSampleRate(sampleRate) else { throw .unsupportedSampleRate(sampleRate) }
        guard AudioFormat.isSupportedChannelCount(channels) else { throw .unsupportedChannelCount(channels) }
        var status: Int32 = OPUS_OK
        guard let handle = opus_decoder_create(Int32(sampleRate), Int32(channels), &status), status == OPUS_OK else {
            throw OpusError(operation: "opus_decoder_create", code: status == OPUS_OK ? OPUS_ALLOC_FAIL : status)
        }
        self.handle = handle
        self.sampleRate = sampleRate
        self.channels = channels
    }

    deinit {
        opus_decoder_destroy(handle)
    }

    /// Samples per channel of the last packet decoded or concealed, 0 before
    /// the first (`OPUS_GET_LAST_PACKET_DURATION`).
    public var lastPacketDuration: Int {
        get throws(OpusError) {
            var value: Int32 = 0
            let status = conclave_opus_decoder_get_last_packet_duration(handle, &value)
            guard status == OPUS_OK else { throw OpusError(operation: "OPUS_GET_LAST_PACKET_DURATION", code: status) }
            return Int(value)
        }
    }

    /// Returns the decoder to its freshly created state (`OPUS_RESET_STATE`).
    public func reset() throws(OpusError) {
        let status = conclave_opus_decoder_reset(handle)
        guard status == OPUS_OK else { throw OpusError(operation: "OPUS_RESET_STATE", code: status) }
    }

    // MARK: Decoding

    /// Decodes one packet, conceals a lost one, or recovers a lost one from
    /// FEC, writing interleaved PCM into `output` without allocating.
    ///
    /// - Parameters:
    ///   - packet: the received packet, or `nil` when it was lost. For a lost
    ///     packet libopus synthesises (conceals) `output.count / channels`
    ///     samples per channel.
    ///   - output: interleaved PCM space, a whole number of frames. For a
    ///     normal decode it must hold the packet's duration
    ///     (``maximumSamplesPerChannel`` × channels always does). For
    ///     concealment or FEC its length *is* the duration produced and must be
    ///     a multiple of 2.5 ms, at most 120 ms.
    ///   - fec: when `true`, `packet` is the packet *after* a lost one and the
    ///     lost one is rebuilt from the FEC data it carries (concealment if it
    ///     carries none). Decode the same packet again with `fec: false` afterwards.
    /// - Returns: samples per channel written to the start of `output`.
    public func decode(
        _ packet: UnsafeRawBufferPointer?,
        into output: UnsafeMutableBufferPointer<Int16>,
        fec: Bool = false
    ) throws(OpusError) -> Int {
        guard output.count % channels == 0 else {
            throw .outputNotWholeFrames(samples: output.count, channels: channels)
        }
        let capacity = output.count / channels
        let concealing = packet == nil || fec
        if concealing {
            let quantum = sampleRate / 400  // 2.5 ms
            guard capacity > 0, capacity % quantum == 0, capacity <= maximumSamplesPerChannel else {
                throw .invalidConcealmentLength(samplesPerChannel: capacity)
            }
        }
        guard let pcm = output.baseAddress else {
            throw .outputBufferTooSmall(required: channels, available: 0)
        }

        var data: UnsafePointer<UInt8>? = nil
        var length: Int32 = 0
        if let packet {
            guard packet.count > 0, let base = packet.baseAddress else { throw .emptyPacket }
            guard packet.count <= Int(Int32.max) else { throw .packetTooLarge(bytes: packet.count) }
            // Opus packets are plain bytes; viewing them as UInt8 is what libopus expects.
            let bytes = base.assumingMemoryBound(to: UInt8.self)
            data = bytes
            length = Int32(packet.count)
            if !fec {
                let needed = opus_decoder_get_nb_samples(handle, bytes, length)
                guard needed >= 0 else { throw OpusError(operation: "opus_decoder_get_nb_samples", code: needed) }
                guard Int(needed) <= capacity else {
                    throw .outputBufferTooSmall(required: Int(needed) * channels, available: output.count)
                }
            }
        }
        let decoded = opus_decode(handle, data, length, pcm, Int32(capacity), fec ? 1 : 0)
        guard decoded >= 0 else { throw OpusError(operation: "opus_decode", code: decoded) }
        return Int(decoded)
    }

    /// Decodes (or conceals, or FEC-recovers) one packet and returns the PCM.
    /// Allocates; prefer ``decode(_:into:fec:)-(UnsafeRawBufferPointer?,_,_)`` on a hot path.
    ///
    /// - Parameter concealedSamplesPerChannel: for `packet == nil` or `fec`,
    ///   the duration to produce; defaults to the last packet's duration, or
    ///   20 ms before any packet was decoded.
    public func decode(_ packet: [UInt8]?, fec: Bool = false, concealedSamplesPerChannel: Int? = nil) throws(OpusError) -> [Int16] {
        let samplesPerChannel: Int
        if packet == nil || fec {
            if let requested = concealedSamplesPerChannel {
                samplesPerChannel = requested
            } else {
                let last = try lastPacketDuration
                samplesPerChannel = last > 0 ? last : OpusFrameDuration.ms20.samplesPerChannel(sampleRate: sampleRate)
            }
            guard samplesPerChannel > 0, samplesPerChannel <= maximumSamplesPerChannel else {
                throw .invalidConcealmentLength(samplesPerChannel: samplesPerChannel)
            }
        } else {
            samplesPerChannel = maximumSamplesPerChannel
        }
        var pcm = [Int16](repeating: 0, count: samplesPerChannel * channels)
        let decoded = try pcm.withUnsafeMutableBufferPointer { output throws(OpusError) in
            if let packet {
                return try packet.withUnsafeBufferPointer { bytes throws(OpusError) in
                    try decode(UnsafeRawBufferPointer(bytes), into: output, fec: fec)
                }
            }
            return try decode(nil, into: output, fec: fec)
        }
        pcm.removeSubrange((decoded * channels)...)
        return pcm
    }
}
