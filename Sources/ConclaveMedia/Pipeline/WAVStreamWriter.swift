#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a ``WAVStreamWriter`` failed. Every case that touches the file names
/// its path; each description is one line.
public enum WAVStreamWriterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The format is not 1–2 channels at an Opus rate.
    case unsupportedFormat(path: String, sampleRate: Int, channels: Int)
    /// The size limit is not in 0…``WAVFile/maximumDataSize``.
    case invalidLimit(path: String, bytes: Int)
    /// The file could not be created or opened for writing.
    case cannotCreate(path: String, reason: String)
    /// Writing, seeking or closing failed.
    case writeFailed(path: String, reason: String)
    /// Appending would take the data past the limit; nothing of that call was written.
    case limitReached(path: String, limitBytes: Int, limitSeconds: Double)
    /// The sample count of an append is not a whole number of frames.
    case notWholeFrames(path: String, samples: Int, channels: Int)
    /// ``WAVStreamWriter/finish()`` was already called.
    case finished(path: String)

    public var description: String {
        switch self {
        case .unsupportedFormat(let path, let rate, let channels):
            return
                "WAV recording \(path): \(channels) channels at \(rate) Hz is not supported; use 1 or 2 channels at \(AudioFormat.supportedSampleRatesText) Hz"
        case .invalidLimit(let path, let bytes):
            return "WAV recording \(path): a limit of \(bytes) bytes is not in 0...\(WAVFile.maximumDataSize)"
        case .cannotCreate(let path, let reason):
            return "WAV recording \(path) could not be created: \(reason)"
        case .writeFailed(let path, let reason):
            return "WAV recording \(path) could not be written: \(reason)"
        case .limitReached(let path, let bytes, let seconds):
            return "WAV recording \(path) reached its limit of \(bytes) bytes of samples (\(seconds) s); the rest was not written"
        case .notWholeFrames(let path, let samples, let channels):
            return "WAV recording \(path): \(samples) samples is not a whole number of \(channels)-channel frames"
        case .finished(let path):
            return "WAV recording \(path) is already finished"
        }
    }
}

/// Writes a 16-bit PCM WAV file as audio arrives (e.g. one per participant
/// during a call), with memory bounded by a 64 KiB write buffer.
///
/// The 44-byte canonical header is written first with zero sizes;
/// ``finish()`` flushes the buffer, seeks back and writes the RIFF and
/// `data` sizes, then closes the file. A writer released without
/// `finish()` finishes on a best-effort basis, ignoring errors. An existing
/// file at the path is replaced.
///
/// The data is limited to ``maximumDataBytes`` (at most
/// ``WAVFile/maximumDataSize``, so ``WAVFile/read(path:)`` can read every
/// file this writes); an append that would pass it throws
/// ``WAVStreamWriterError/limitReached(path:limitBytes:limitSeconds:)`` and
/// writes nothing, and the file stays valid up to that point.
///
/// Not `Sendable`: one owner appends in order.
public final class WAVStreamWriter {
    /// Bytes buffered before a `write(2)`.
    public static let bufferSize = 64 * 1024

    public let path: String
    public let sampleRate: Int
    public let channels: Int
    /// The data limit in bytes.
    public let maximumDataBytes: Int
    /// Samples (all channels) appended so far.
    public private(set) var samplesWritten = 0
    /// Whether ``finish()`` has run.
    public private(set) var isFinished = false

    private var descriptor: Int32
    private var buffer: [UInt8]
    private var buffered = 0

    /// Bytes of sample data appended so far.
    public var dataBytes: Int { samplesWritten * 2 }
    /// Seconds of audio appended so far.
    public var duration: Double { Double(samplesWritten / channels) / Double(sampleRate) }

    // MARK: Life cycle

    /// Creates (or truncates) the file and writes its header.
    ///
    /// - Parameters:
    ///   - maximumDataBytes: limit on sample data (default ``WAVFile/maximumDataSize``,
    ///     512 MiB); ``maximumDataBytes(seconds:sampleRate:channels:)`` converts a duration.
    ///   - mode: permissions of a newly created file (default 0644; 0600 for exports of
    ///     recordings).
    /// - Throws: ``WAVStreamWriterError/unsupportedFormat(path:sampleRate:channels:)``,
    ///   ``WAVStreamWriterError/invalidLimit(path:bytes:)``,
    ///   ``WAVStreamWriterError/cannotCreate(path:reason:)`` or
    ///   ``WAVStreamWriterError/writeFailed(path:reason:)``.
    public init(
        path: String, sampleRate: Int = AudioFormat.productSampleRate, channels: Int = 1,
        maximumDataBytes: Int = WAVFile.maximumDataSize, mode: mode_t = 0o644
    ) throws(WAVStreamWriterError) {
        guard AudioFormat.isSupportedSampleRate(sampleRate), AudioFormat.isSupportedChannelCount(channels) else {
            throw .unsupportedFormat(path: path, sampleRate: sampleRate, channels: channels)
        }
        guard (0...WAVFile.maximumDataSize).contains(maximumDataBytes) else {
            throw .invalidLimit(path: path, bytes: maximumDataBytes)
        }
        self.path = path
        self.sampleRate = sampleRate
        self.channels = channels
        // Whole frames only, so a full file is still a valid WAV.
        self.maximumDataBytes = maximumDataBytes - maximumDataBytes % (2 * channels)
        self.buffer = [UInt8](repeating: 0, count: Self.bufferSize)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .cannotCreate(path: path, reason: Self.errorText(errno)) }
        self.descriptor = fd
        let header = Self.header(sampleRate: sampleRate, channels: channels, dataBytes: 0)
        do throws(WAVStreamWriterError) {
            try writeAll(header)
        } catch {
            close(fd)
            descriptor = -1
            isFinished = true
            throw error
        }
    }

    deinit {
        if !isFinished { try? finish() }
    }

    /// The data limit for `seconds` of audio in this format (whole frames),
    /// capped at ``WAVFile/maximumDataSize``.
    public static func maximumDataBytes(seconds: Double, sampleRate: Int = AudioFormat.productSampleRate, channels: Int = 1) -> Int {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        let frames = (seconds * Double(sampleRate)).rounded(.down)
        let bytes = frames * Double(2 * channels)
        return bytes >= Double(WAVFile.maximumDataSize) ? WAVFile.maximumDataSize : Int(bytes)
    }

    // MARK: Writing

    /// Appends interleaved samples.
    ///
    /// - Throws: ``WAVStreamWriterError/notWholeFrames(path:samples:channels:)``,
    ///   ``WAVStreamWriterError/limitReached(path:limitBytes:limitSeconds:)``
    ///   (nothing of this call is written), ``WAVStreamWriterError/finished(path:)``
    ///   or ``WAVStreamWriterError/writeFailed(path:reason:)``.
    public func append(_ samples: UnsafeBufferPointer<Int16>) throws(WAVStreamWriterError) {
        guard !isFinished else { throw .finished(path: path) }
        guard samples.count % channels == 0 else {
            throw .notWholeFrames(path: path, samples: samples.count, channels: channels)
        }
        guard samples.count <= (maximumDataBytes - dataBytes) / 2 else {
            throw .limitReached(
                path: path, limitBytes: maximumDataBytes,
                limitSeconds: Double(maximumDataBytes / (2 * channels)) / Double(sampleRate))
        }
        var index = 0
        while index < samples.count {
            if buffered == buffer.count { try flush() }
            let count = min(samples.count - index, (buffer.count - buffered) / 2)
            buffer.withUnsafeMutableBytes { out in
                for offset in 0..<count {
                    out.storeBytes(
                        of: UInt16(bitPattern: samples[index + offset]).littleEndian,
                        toByteOffset: buffered + 2 * offset, as: UInt16.self)
                }
            }
            buffered += 2 * count
            index += count
        }
        samplesWritten += samples.count
    }

    /// Array convenience for ``append(_:)-(UnsafeBufferPointer<Int16>)``.
    public func append(_ samples: [Int16]) throws(WAVStreamWriterError) {
        try samples.withUnsafeBufferPointer { buffer throws(WAVStreamWriterError) in try append(buffer) }
    }

    /// Flushes, writes the final RIFF and `data` sizes into the header, and
    /// closes the file. Afterwards the writer accepts nothing.
    ///
    /// - Throws: ``WAVStreamWriterError/finished(path:)`` on a second call, or
    ///   ``WAVStreamWriterError/writeFailed(path:reason:)``; the file is closed either way.
    public func finish() throws(WAVStreamWriterError) {
        guard !isFinished else { throw .finished(path: path) }
        isFinished = true
        var failure: WAVStreamWriterError?
        do throws(WAVStreamWriterError) {
            try flush()
            var riffSize = UInt32(WAVFile.canonicalHeaderSize - 8 + dataBytes).littleEndian
            var dataSize = UInt32(dataBytes).littleEndian
            try patch(&riffSize, at: 4)
            try patch(&dataSize, at: 40)
        } catch {
            failure = error
        }
        let closed = close(descriptor)
        let closeError = errno
        descriptor = -1
        if let failure { throw failure }
        guard closed == 0 else { throw .writeFailed(path: path, reason: Self.errorText(closeError)) }
    }

    // MARK: POSIX

    private func flush() throws(WAVStreamWriterError) {
        guard buffered > 0 else { return }
        let count = buffered
        buffered = 0
        var failure: Int32 = 0
        buffer.withUnsafeBytes { bytes in
            failure = Self.writeFully(descriptor, UnsafeRawBufferPointer(rebasing: bytes[..<count]))
        }
        guard failure == 0 else { throw .writeFailed(path: path, reason: Self.errorText(failure)) }
    }

    private func writeAll(_ bytes: [UInt8]) throws(WAVStreamWriterError) {
        let failure = bytes.withUnsafeBytes { Self.writeFully(descriptor, $0) }
        guard failure == 0 else { throw .writeFailed(path: path, reason: Self.errorText(failure)) }
    }

    private func patch(_ value: inout UInt32, at offset: Int) throws(WAVStreamWriterError) {
        let written = withUnsafeBytes(of: &value) { pwrite(descriptor, $0.baseAddress, 4, off_t(offset)) }
        guard written == 4 else {
            throw .writeFailed(path: path, reason: written < 0 ? Self.errorText(errno) : "short write of the header")
        }
    }

    /// Writes every byte, retrying on EINTR and short writes; returns errno or 0.
    private static func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        var written = 0
        while written < bytes.count {
            let n = write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n > 0 {
                written += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return n < 0 ? errno : EIO
            }
        }
        return 0
    }

    private static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// The canonical 44-byte PCM header.
    static func header(sampleRate: Int, channels: Int, dataBytes: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(WAVFile.canonicalHeaderSize)
        func le32(_ value: Int) { withUnsafeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian) { out += $0 } }
        func le16(_ value: Int) { withUnsafeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian) { out += $0 } }
        out += Array("RIFF".utf8)
        le32(WAVFile.canonicalHeaderSize - 8 + dataBytes)
        out += Array("WAVEfmt ".utf8)
        le32(16)
        le16(1)  // WAVE_FORMAT_PCM
        le16(channels)
        le32(sampleRate)
        le32(sampleRate * channels * 2)
        le16(channels * 2)
        le16(16)
        out += Array("data".utf8)
        le32(dataBytes)
        return out
    }
}
