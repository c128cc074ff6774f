#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads and writes 16-bit PCM WAV files (RIFF/WAVE), whole-file at a time.
///
/// Accepted on read:
/// - a `RIFF` container of form type `WAVE`. The RIFF size field is trusted
///   only up to the bytes actually present (streaming writers often leave it
///   wrong); every sub-chunk, though, must fit in what is present.
/// - a `fmt ` chunk with format tag 1 (PCM), or WAVE_FORMAT_EXTENSIBLE
///   (0xFFFE) whose sub-format is PCM; 16 bits per sample; 1 or 2 channels;
///   a sample rate in ``AudioFormat/supportedSampleRates``; block align and
///   byte rate consistent with those. The extensible `wValidBitsPerSample`
///   and channel mask are not interpreted.
/// - a `data` chunk whose size is a whole number of frames and at most
///   ``maximumDataSize``.
/// - any other chunks (`LIST`, `fact`, `cue `, …), which are skipped. Odd
///   chunk sizes are followed by one pad byte, as RIFF requires. Only the
///   first `fmt ` and `data` chunks count.
///
/// Every length read from the file is checked against the bytes present and
/// against the limits below before it is used; nothing is allocated from a
/// length the file declares until it has passed those checks.
public enum WAVFile {
    // MARK: Limits

    /// The largest `data` chunk accepted or written: 512 MiB, which is about
    /// 46 minutes of 48 kHz stereo or 93 minutes of 48 kHz mono.
    public static let maximumDataSize = 512 * 1024 * 1024

    /// The largest file ``read(path:)`` will load: ``maximumDataSize`` plus
    /// 1 MiB for headers and metadata chunks. Larger files are rejected from
    /// their size on disk before anything is read.
    public static let maximumFileSize = maximumDataSize + 1024 * 1024

    /// Size of the canonical header ``write(_:)`` produces.
    public static let canonicalHeaderSize = 44

    // MARK: Reading

    /// Reads a WAV file from disk.
    ///
    /// - Throws: ``WAVError/fileNotFound(path:)``,
    ///   ``WAVError/fileUnreadable(path:reason:)``,
    ///   ``WAVError/fileTooLarge(path:bytes:limit:)``, or any format error of
    ///   ``read(bytes:)-([UInt8])``.
    public static func read(path: String) throws(WAVError) -> PCMAudio {
        let bytes = try FileIO.readWholeFile(path: path, limit: maximumFileSize)
        return try read(bytes: bytes)
    }

    /// Parses a WAV file held in memory.
    public static func read(bytes: [UInt8]) throws(WAVError) -> PCMAudio {
        try bytes.withUnsafeBufferPointer { buffer throws(WAVError) in
            try read(bytes: UnsafeRawBufferPointer(buffer))
        }
    }

    /// Parses a WAV file held in memory. Only the returned samples are allocated.
    public static func read(bytes: UnsafeRawBufferPointer) throws(WAVError) -> PCMAudio {
        var parser = WAVParser(bytes: bytes)
        return try parser.parse()
    }

    // MARK: Writing

    /// Encodes `audio` as a canonical 44-byte-header PCM WAV file.
    ///
    /// - Throws: ``WAVError/unsupportedChannelCount(_:)``,
    ///   ``WAVError/unsupportedSampleRate(_:)``,
    ///   ``WAVError/dataSizeNotFrameMultiple(bytes:frameSize:)`` if the sample
    ///   count is not a multiple of the channel count, or
    ///   ``WAVError/dataTooLarge(bytes:limit:)``.
    public static func write(_ audio: PCMAudio) throws(WAVError) -> [UInt8] {
        guard AudioFormat.isSupportedChannelCount(audio.channels) else {
            throw .unsupportedChannelCount(audio.channels)
        }
        guard AudioFormat.isSupportedSampleRate(audio.sampleRate) else {
            throw .unsupportedSampleRate(audio.sampleRate)
        }
        let blockAlign = audio.channels * 2
        let (dataSize, overflow) = audio.samples.count.multipliedReportingOverflow(by: 2)
        guard !overflow, dataSize <= maximumDataSize else {
            throw .dataTooLarge(bytes: overflow ? Int.max : dataSize, limit: maximumDataSize)
        }
        guard dataSize % blockAlign == 0 else {
            throw .dataSizeNotFrameMultiple(bytes: dataSize, frameSize: blockAlign)
        }

        var out: [UInt8] = []
        out.reserveCapacity(canonicalHeaderSize + dataSize)
        out.append(contentsOf: Array("RIFF".utf8))
        out.appendLittleEndian(UInt32(canonicalHeaderSize - 8 + dataSize))
        out.append(contentsOf: Array("WAVE".utf8))
        out.append(contentsOf: Array("fmt ".utf8))
        out.appendLittleEndian(UInt32(16))
        out.appendLittleEndian(UInt16(1))  // WAVE_FORMAT_PCM
        out.appendLittleEndian(UInt16(audio.channels))
        out.appendLittleEndian(UInt32(audio.sampleRate))
        out.appendLittleEndian(UInt32(audio.sampleRate * blockAlign))
        out.appendLittleEndian(UInt16(blockAlign))
        out.appendLittleEndian(UInt16(16))
        out.append(contentsOf: Array("data".utf8))
        out.appendLittleEndian(UInt32(dataSize))
        for sample in audio.samples {
            out.appendLittleEndian(UInt16(bitPattern: sample))
        }
        return out
    }

    /// Writes `audio` to `path` as a canonical PCM WAV file, replacing any
    /// existing file.
    ///
    /// - Throws: the errors of ``write(_:)``, or
    ///   ``WAVError/fileUnwritable(path:reason:)``.
    public static func write(_ audio: PCMAudio, to path: String) throws(WAVError) {
        let bytes = try write(audio)
        try FileIO.writeWholeFile(path: path, bytes: bytes)
    }
}

// MARK: - Parser

/// A single pass over a RIFF/WAVE byte image. See ``WAVFile`` for what is accepted.
struct WAVParser {
    private let bytes: UnsafeRawBufferPointer

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The format fields that matter once `fmt ` has been validated.
    private struct Format {
        var channels: Int
        var sampleRate: Int
        var blockAlign: Int
    }

    /// The tail shared by every standard WAVE sub-format GUID
    /// (`xxxxxxxx-0000-0010-8000-00AA00389B71`), after the 2-byte format tag
    /// and 2 zero bytes.
    private static let guidTail: [UInt8] = [0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]

    mutating func parse() throws(WAVError) -> PCMAudio {
        let total = bytes.count
        guard total >= 4, fourCC(at: 0) == "RIFF" else { throw .notRIFF }
        guard total >= 12 else {
            let declared = total >= 8 ? Int(u32(at: 4)) : 4
            throw .truncatedChunk(id: "RIFF", declaredSize: declared, available: max(0, total - 8))
        }
        guard fourCC(at: 8) == "WAVE" else { throw .notWAVE }
        // Trust the RIFF size only as far as the bytes present.
        let end = 8 + min(Int(u32(at: 4)), total - 8)

        var format: Format?
        var data: Range<Int>?
        var offset = 12
        while end - offset >= 8 {
            let id = fourCC(at: offset)
            let size = Int(u32(at: offset + 4))
            let body = offset + 8
            let available = end - body
            if id == "data" && data == nil {
                // Limit first, so an absurd size is reported as such.
                guard size <= WAVFile.maximumDataSize else {
                    throw .dataTooLarge(bytes: size, limit: WAVFile.maximumDataSize)
                }
            }
            guard size <= available else {
                throw .truncatedChunk(id: id, declaredSize: size, available: available)
            }
            switch id {
            case "fmt " where format == nil:
                format = try parseFormat(at: body, size: size)
            case "data" where data == nil:
                data = body..<(body + size)
            default:
                break  // LIST, fact, cue, duplicates, …: skipped.
            }
            // RIFF pads odd-sized chunks to an even length; a missing final
            // pad byte just ends the walk.
            offset = body + size + (size & 1)
        }
        // Fewer than 8 trailing bytes cannot hold a chunk header; ignore them.

        guard let format else { throw .missingFormatChunk }
        guard let data else { throw .missingDataChunk }
        guard data.count % format.blockAlign == 0 else {
            throw .dataSizeNotFrameMultiple(bytes: data.count, frameSize: format.blockAlign)
        }
        let count = data.count / 2
        let samples = [Int16](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                buffer[i] = Int16(bitPattern: u16(at: data.lowerBound + 2 * i))
            }
            initialized = count
        }
        return PCMAudio(sampleRate: format.sampleRate, channels: format.channels, samples: samples)
    }

    private func parseFormat(at body: Int, size: Int) throws(WAVError) -> Format {
        guard size >= 16 else { throw .formatChunkTooShort(size: size, required: 16) }
        let tag = u16(at: body)
        let channels = Int(u16(at: body + 2))
        let sampleRate = Int(u32(at: body + 4))
        let byteRate = Int(u32(at: body + 8))
        let blockAlign = Int(u16(at: body + 12))
        let bits = Int(u16(at: body + 14))

        var encoding = tag
        if tag == 0xFFFE {
            // WAVEFORMATEXTENSIBLE: cbSize(2) validBits(2) channelMask(4) subFormat(16).
            guard size >= 40 else { throw .formatChunkTooShort(size: size, required: 40) }
            let guid = body + 24
            let tail = (4..<16).map { bytes[guid + $0] }
            guard u16(at: guid + 2) == 0, tail == Self.guidTail else {
                throw .unsupportedSubformat(guid: guidString(at: guid))
            }
            encoding = u16(at: guid)
        }
        guard encoding == 1 else { throw .unsupportedFormat(tag: encoding) }
        guard bits == 16 else { throw .unsupportedBitsPerSample(bits) }
        guard AudioFormat.isSupportedChannelCount(channels) else { throw .unsupportedChannelCount(channels) }
        guard AudioFormat.isSupportedSampleRate(sampleRate) else { throw .unsupportedSampleRate(sampleRate) }
        guard blockAlign == channels * 2 else {
            throw .inconsistentBlockAlign(declared: blockAlign, expected: channels * 2)
        }
        guard byteRate == sampleRate * blockAlign else {
            throw .inconsistentByteRate(declared: byteRate, expected: sampleRate * blockAlign)
        }
        return Format(channels: channels, sampleRate: sampleRate, blockAlign: blockAlign)
    }

    // MARK: Little-endian access (callers have bounds-checked the offsets)

    private func u16(at offset: Int) -> UInt16 {
        UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    private func u32(at offset: Int) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// A chunk ID as text, with non-printable bytes escaped for error messages.
    private func fourCC(at offset: Int) -> String {
        var text = ""
        for byte in bytes[offset..<(offset + 4)] {
            if (0x20...0x7E).contains(byte) {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                text += "\\x" + hex(byte)
            }
        }
        return text
    }

    /// A GUID in its usual textual form (first three fields little-endian).
    private func guidString(at offset: Int) -> String {
        let order = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
        return order.map { $0 < 0 ? "-" : hex(bytes[offset + $0]) }.joined()
    }

    private func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}

extension [UInt8] {
    fileprivate mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

// MARK: - File I/O

/// Whole-file POSIX I/O with errno-based errors that name the path.
enum FileIO {
    static func readWholeFile(path: String, limit: Int) throws(WAVError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw .fileNotFound(path: path) }
            throw .fileUnreadable(path: path, reason: errorText(code))
        }
        defer { close(fd) }

        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .fileUnreadable(path: path, reason: errorText(errno)) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .fileUnreadable(path: path, reason: "not a regular file")
        }
        let size = UInt64(max(0, info.st_size))
        guard size <= UInt64(limit) else { throw .fileTooLarge(path: path, bytes: size, limit: limit) }

        // `size` has passed the limit; read at most that much (a file that
        // grows meanwhile is cut at its size when opened).
        let capacity = Int(size)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            initialized = 0
            while initialized < capacity {
                let n = Glue.read(fd, buffer.baseAddress! + initialized, capacity - initialized)
                if n > 0 {
                    initialized += n
                } else if n == 0 {
                    break  // file shrank
                } else if errno != EINTR {
                    failure = errno
                    break
                }
            }
        }
        guard failure == 0 else { throw .fileUnreadable(path: path, reason: errorText(failure)) }
        return bytes
    }

    static func writeWholeFile(path: String, bytes: [UInt8]) throws(WAVError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .fileUnwritable(path: path, reason: errorText(errno)) }
        var failure: Int32 = 0
        bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let n = Glue.write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n >= 0 {
                    written += n
                } else if errno != EINTR {
                    failure = errno
                    return
                }
            }
        }
        if close(fd) != 0 && failure == 0 { failure = errno }
        guard failure == 0 else { throw .fileUnwritable(path: path, reason: errorText(failure)) }
    }

    private static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}

/// Disambiguates the C `read`/`write` from `WAVFile.read`/`write` inside this file.
private enum Glue {
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        Glibc.read(fd, buffer, count)
        #elseif canImport(Musl)
        Musl.read(fd, buffer, count)
        #else
        Darwin.read(fd, buffer, count)
        #endif
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Glibc)
        Glibc.write(fd, buffer, count)
        #elseif canImport(Musl)
        Musl.write(fd, buffer, count)
        #else
        Darwin.write(fd, buffer, count)
        #endif
    }
}
