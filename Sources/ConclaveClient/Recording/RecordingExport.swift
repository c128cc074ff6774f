#if canImport(Glibc)
import Glibc
#endif
import ConclaveCrypto
import ConclaveMedia
import ConclaveProtocol

/// `conclave recording export`: one WAV per recorded member and the chat as text and JSON
/// lines, written only after the whole file verified.
///
/// The file is read twice: first to verify every record (nothing is written), then to
/// decode into a fresh directory inside the output directory, whose files move into place
/// at the end. Any failure removes what the second pass wrote, so there is never partial
/// plaintext output. Exported files are created with mode 0600.
public enum RecordingExport {
    public struct Result: Sendable, Equatable {
        public var summary: RecordingReader.Summary
        /// Paths written, in order: one WAV per member with audio, then `chat.txt` and
        /// `chat.jsonl` when there was chat.
        public var files: [String]
    }

    /// Silence inserted for gaps longer than this between two packets of one member.
    static let packetMillis: UInt32 = 20

    public static func export(path: String, key: SecretKey, to directory: String) throws(RecordingError) -> Result {
        // Pass 1: verify everything.
        let summary = try RecordingReader.read(path: path, key: key)
        // Pass 2: decode into a private staging directory.
        var template = Array("\(directory)/.conclave-export-XXXXXX".utf8CString)
        guard let staged = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw .io("cannot create a directory in \(directory): \(String(cString: strerror(errno)))")
        }
        var written: [String] = []
        var names: [String] = []
        do throws(RecordingError) {
            var tracks: [UInt16: Track] = [:]
            var text = ""
            var json = ""
            let members = Dictionary(uniqueKeysWithValues: summary.members.map { ($0.index, $0) })
            try RecordingReader.read(path: path, key: key) { record throws(RecordingError) in
                switch record {
                case let .audio(index, at, opus):
                    if tracks[index] == nil {
                        let name = "participant-\(index).wav"
                        tracks[index] = try Track(path: "\(staged)/\(name)") { names.append(($0 as String).split(separator: "/").last.map(String.init) ?? $0) }
                        names.append(name)
                    }
                    try tracks[index]!.add(opus, atMillis: at)
                case let .chat(index, at, isPrivate, line):
                    let who = members[index].map { $0.displayName.isEmpty ? "#\(index)" : "\($0.displayName) (#\(index))" } ?? "#\(index)"
                    text += "[\(Self.clock(at))] \(Self.printable(who))\(isPrivate ? " (private)" : ""): \(Self.printable(line))\n"
                    json +=
                        "{\"t_ms\":\(at),\"from\":\(index),\"name\":\(EventOutput.quote(members[index]?.displayName ?? "")),\"private\":\(isPrivate),\"text\":\(EventOutput.quote(line))}\n"
                default:
                    break
                }
            }
            for track in tracks.values { try track.finish() }
            if !text.isEmpty {
                try Self.write(text, to: "\(staged)/chat.txt")
                try Self.write(json, to: "\(staged)/chat.jsonl")
                names += ["chat.txt", "chat.jsonl"]
            }
            for name in names {
                // link() never replaces an existing file, unlike rename().
                let target = "\(directory)/\(name)"
                guard link("\(staged)/\(name)", target) == 0 else {
                    throw RecordingError.io(
                        errno == EEXIST ? "\(target) already exists; export into an empty directory" : "cannot move \(name) into \(directory)")
                }
                written.append(target)
                unlink("\(staged)/\(name)")
            }
            rmdir(staged)
            return Result(summary: summary, files: written)
        } catch {
            for name in names { unlink("\(staged)/\(name)") }
            for path in written { unlink(path) }
            rmdir(staged)
            throw error
        }
    }

    /// One line of text a terminal shows as it is: line breaks become spaces, other control
    /// characters (terminal escapes included) U+FFFD.
    public static func printable(_ s: String) -> String {
        String(
            String.UnicodeScalarView(
                s.unicodeScalars.map { c -> Unicode.Scalar in
                    if c == "\n" || c == "\r" || c == "\t" { return " " }
                    return c.properties.generalCategory == .control ? "\u{FFFD}" : c
                }))
    }

    /// `mm:ss.mmm`.
    static func clock(_ ms: UInt32) -> String {
        let m = ms / 60_000, s = ms / 1_000 % 60, f = ms % 1_000
        func pad(_ v: UInt32, _ n: Int) -> String { String(repeating: "0", count: max(0, n - String(v).count)) + String(v) }
        return "\(pad(m, 2)):\(pad(s, 2)).\(pad(f, 3))"
    }

    static func write(_ text: String, to path: String) throws(RecordingError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 { if errno == EINTR { continue }; throw .io("cannot write \(path)") }
            done += n
        }
    }

    /// One member's audio: Opus decoded to 48 kHz mono, silence where packets are missing,
    /// so the WAV's timeline is the recording's.
    /// A WAV holds at most ``WAVFile/maximumDataSize`` (512 MiB, about 93 minutes here);
    /// a longer track continues in `participant-<index>-2.wav`, `-3`, and so on.
    final class Track {
        let decoder: OpusDecoder
        var writer: WAVStreamWriter
        var position: UInt64 = 0  // samples written
        var inPart = 0  // samples in the current part
        var part = 1
        let base: String
        let onNewPart: (String) -> Void
        static let samplesPerMilli: UInt64 = 48
        static let samplesPerPart = WAVFile.maximumDataSize / 2

        init(path: String, onNewPart: @escaping (String) -> Void = { _ in }) throws(RecordingError) {
            base = String(path.dropLast(4))
            self.onNewPart = onNewPart
            do {
                decoder = try OpusDecoder(channels: 1)
                writer = try WAVStreamWriter(path: path, sampleRate: 48_000, channels: 1, mode: 0o600)
            } catch {
                throw .io("cannot start \(path): \(error)")
            }
        }

        /// Appends, starting a new part when this one is full.
        private func append(_ samples: [Int16]) throws(RecordingError) {
            var rest = samples[...]
            while !rest.isEmpty {
                if inPart == Self.samplesPerPart {
                    do { try writer.finish() } catch { throw .io("cannot finish a WAV: \(error)") }
                    part += 1
                    let path = "\(base)-\(part).wav"
                    do { writer = try WAVStreamWriter(path: path, sampleRate: 48_000, channels: 1, mode: 0o600) } catch {
                        throw .io("cannot start \(path): \(error)")
                    }
                    onNewPart(path)
                    inPart = 0
                }
                let n = min(rest.count, Self.samplesPerPart - inPart)
                do { try writer.append(Array(rest.prefix(n))) } catch { throw .io("cannot write audio: \(error)") }
                inPart += n
                rest = rest.dropFirst(n)
            }
        }

        func add(_ opus: [UInt8], atMillis at: UInt32) throws(RecordingError) {
            let target = UInt64(at) * Self.samplesPerMilli
            // Fill a gap of more than one packet with silence (a late packet is played at once).
            if target > position + UInt64(RecordingExport.packetMillis) * Self.samplesPerMilli {
                let silence = target - position
                var left = silence
                let chunk = [Int16](repeating: 0, count: 4_800)
                while left > 0 {
                    let n = Int(min(left, UInt64(chunk.count)))
                    try append(Array(chunk[0..<n]))
                    left -= UInt64(n)
                }
                position += silence
            }
            let pcm: [Int16]
            do { pcm = try decoder.decode(opus) } catch {
                // A packet that verified but does not decode: conceal it.
                pcm = (try? decoder.decode(nil)) ?? []
            }
            try append(pcm)
            position += UInt64(pcm.count)
        }

        func finish() throws(RecordingError) {
            do { try writer.finish() } catch { throw .io("cannot finish a WAV: \(error)") }
        }
    }
}

/// `conclave recording purge`: deletes the recordings in a directory whose retention
/// deadline has passed. Deletion is the filesystem's `unlink`: the blocks are not
/// overwritten, but without the file key (sealed in the deleted file) they are ciphertext.
public enum RecordingPurge {
    public struct Outcome: Sendable, Equatable {
        public var deleted: [String] = []
        public var kept: [String] = []
        /// Files that are not recordings (or could not be read), with the reason.
        public var skipped: [String] = []
    }

    /// Looks at every regular file directly in `directory` (not below it).
    public static func purge(directory: String, now: UInt64) throws(RecordingError) -> Outcome {
        guard let dir = opendir(directory) else { throw .io("cannot open \(directory): \(String(cString: strerror(errno)))") }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        closedir(dir)
        var outcome = Outcome()
        for name in names.sorted() {
            let path = "\(directory)/\(name)"
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            let header: RecordingHeader
            do { header = try RecordingReader.header(path: path) } catch {
                outcome.skipped.append("\(path): \(error)")
                continue
            }
            if header.retainUntil <= now {
                guard unlink(path) == 0 else {
                    outcome.skipped.append("\(path): cannot delete: \(String(cString: strerror(errno)))")
                    continue
                }
                outcome.deleted.append(path)
            } else {
                outcome.kept.append(path)
            }
        }
        return outcome
    }
}
