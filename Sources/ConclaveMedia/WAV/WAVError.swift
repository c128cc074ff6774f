/// Why a WAV file could not be read or written. Each description is one line
/// that names the problem and, where it helps, what would be accepted.
public enum WAVError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file exists at `path`.
    case fileNotFound(path: String)
    /// The file exists but could not be opened or read.
    case fileUnreadable(path: String, reason: String)
    /// The file could not be created or written.
    case fileUnwritable(path: String, reason: String)
    /// The file is larger than ``WAVFile/maximumFileSize``; nothing was read.
    case fileTooLarge(path: String, bytes: UInt64, limit: Int)
    /// The first four bytes are not `RIFF` (e.g. `RIFX`, `RF64`, or not a WAV at all).
    case notRIFF
    /// The RIFF form type is not `WAVE`.
    case notWAVE
    /// A chunk (or the RIFF container) claims more bytes than are present.
    case truncatedChunk(id: String, declaredSize: Int, available: Int)
    /// No `fmt ` chunk before the end of the file.
    case missingFormatChunk
    /// No `data` chunk before the end of the file.
    case missingDataChunk
    /// The `fmt ` chunk is shorter than its format requires.
    case formatChunkTooShort(size: Int, required: Int)
    /// The sample encoding is not integer PCM: `tag` is the format tag, or for
    /// WAVE_FORMAT_EXTENSIBLE the sub-format's tag (3 = IEEE float, 6 = A-law, …).
    case unsupportedFormat(tag: UInt16)
    /// WAVE_FORMAT_EXTENSIBLE with a sub-format GUID outside the standard
    /// `xxxxxxxx-0000-0010-8000-00AA00389B71` family.
    case unsupportedSubformat(guid: String)
    /// Bits per sample (or valid bits per sample) other than 16.
    case unsupportedBitsPerSample(Int)
    /// Channel count other than 1 or 2.
    case unsupportedChannelCount(Int)
    /// A sample rate Opus cannot use.
    case unsupportedSampleRate(Int)
    /// `nBlockAlign` disagrees with channels × 2 bytes.
    case inconsistentBlockAlign(declared: Int, expected: Int)
    /// `nAvgBytesPerSec` disagrees with sample rate × block align.
    case inconsistentByteRate(declared: Int, expected: Int)
    /// The sample data is not a whole number of frames.
    case dataSizeNotFrameMultiple(bytes: Int, frameSize: Int)
    /// The sample data exceeds ``WAVFile/maximumDataSize``; nothing was allocated for it.
    case dataTooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "WAV file not found: \(path)"
        case .fileUnreadable(let path, let reason):
            return "WAV file \(path) could not be read: \(reason)"
        case .fileUnwritable(let path, let reason):
            return "WAV file \(path) could not be written: \(reason)"
        case .fileTooLarge(let path, let bytes, let limit):
            return "WAV file \(path) is \(bytes) bytes, over the \(limit)-byte limit"
        case .notRIFF:
            return "not a WAV file: it does not start with a RIFF header"
        case .notWAVE:
            return "not a WAV file: the RIFF form type is not WAVE"
        case .truncatedChunk(let id, let declared, let available):
            return "WAV file is truncated: the '\(id)' chunk declares \(declared) bytes but only \(available) are present"
        case .missingFormatChunk:
            return "WAV file has no 'fmt ' chunk describing its format"
        case .missingDataChunk:
            return "WAV file has no 'data' chunk with samples"
        case .formatChunkTooShort(let size, let required):
            return "WAV 'fmt ' chunk is \(size) bytes; at least \(required) are required"
        case .unsupportedFormat(let tag):
            return "WAV sample format \(Self.formatName(tag)) is not supported; use 16-bit integer PCM"
        case .unsupportedSubformat(let guid):
            return "WAV extensible sub-format \(guid) is not supported; use 16-bit integer PCM"
        case .unsupportedBitsPerSample(let bits):
            return "WAV with \(bits) bits per sample is not supported; use 16-bit PCM"
        case .unsupportedChannelCount(let channels):
            return "WAV channel count \(channels) is not supported; use 1 (mono) or 2 (stereo)"
        case .unsupportedSampleRate(let rate):
            return "WAV sample rate \(rate) Hz is not supported; use \(AudioFormat.supportedSampleRatesText) Hz"
        case .inconsistentBlockAlign(let declared, let expected):
            return "WAV block align is \(declared) bytes but channels × 2 bytes is \(expected)"
        case .inconsistentByteRate(let declared, let expected):
            return "WAV byte rate is \(declared) bytes/s but sample rate × block align is \(expected)"
        case .dataSizeNotFrameMultiple(let bytes, let frameSize):
            return "WAV data size \(bytes) bytes is not a multiple of the \(frameSize)-byte frame size"
        case .dataTooLarge(let bytes, let limit):
            return "WAV data size \(bytes) bytes is over the \(limit)-byte limit"
        }
    }

    /// A readable name for common WAVE format tags.
    static func formatName(_ tag: UInt16) -> String {
        let name: String? =
            switch tag {
            case 0x0001: "PCM"
            case 0x0002: "Microsoft ADPCM"
            case 0x0003: "IEEE float"
            case 0x0006: "A-law"
            case 0x0007: "µ-law"
            case 0x0011: "IMA ADPCM"
            case 0x0055: "MPEG layer 3"
            case 0xFFFE: "extensible"
            default: nil
            }
        var digits = String(tag, radix: 16, uppercase: true)
        while digits.count < 4 { digits = "0" + digits }
        let hex = "0x" + digits
        return name.map { "\($0) (format tag \(hex))" } ?? "format tag \(hex)"
    }
}
