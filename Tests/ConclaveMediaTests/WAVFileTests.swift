import ConclaveMedia
import Foundation
import Testing

@Suite("WAV files")
struct WAVFileTests {
    // MARK: Round trips

    @Test("PCM round-trips through bytes", arguments: [(1, 16_000), (2, 48_000), (1, 8_000), (2, 24_000)])
    func roundTripBytes(format: (channels: Int, sampleRate: Int)) throws {
        var noise = NoiseGenerator(seed: 42, amplitude: 1, channels: format.channels)
        let audio = PCMAudio(
            sampleRate: format.sampleRate, channels: format.channels,
            samples: noise.generate(frameCount: 1_001))
        let bytes = try WAVFile.write(audio)
        #expect(bytes.count == WAVFile.canonicalHeaderSize + audio.samples.count * 2)
        #expect(Array(bytes[0..<4]) == Array("RIFF".utf8))
        let decoded = try WAVFile.read(bytes: bytes)
        #expect(decoded == audio)
        #expect(decoded.frameCount == 1_001)
    }

    @Test("PCM round-trips through a file")
    func roundTripFile() throws {
        let path = temporaryPath("roundtrip.wav")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var tone = ToneGenerator(frequency: 440, amplitude: 0.8, sampleRate: 48_000, channels: 2)
        let audio = PCMAudio(sampleRate: 48_000, channels: 2, samples: tone.generate(frameCount: 48_000))
        try WAVFile.write(audio, to: path)
        let decoded = try WAVFile.read(path: path)
        #expect(decoded == audio)
        #expect(decoded.duration == 1.0)
    }

    @Test("extreme sample values survive")
    func extremeValues() throws {
        let audio = PCMAudio(sampleRate: 12_000, channels: 1, samples: [.min, .max, 0, -1, 1])
        #expect(try WAVFile.read(bytes: WAVFile.write(audio)) == audio)
    }

    // MARK: Tolerated variations

    @Test("WAVE_FORMAT_EXTENSIBLE with a PCM sub-format is read")
    func extensiblePCM() throws {
        let samples: [Int16] = [100, -100, 200, -200]
        let bytes = WAVBytes.file(format: WAVBytes.extensibleFormatBody(), samples: samples)
        let audio = try WAVFile.read(bytes: bytes)
        #expect(audio == PCMAudio(sampleRate: 48_000, channels: 2, samples: samples))
    }

    @Test("unknown chunks are skipped and odd sizes padded")
    func skipsUnknownChunks() throws {
        let samples: [Int16] = [7, 8, 9]
        let bytes = WAVBytes.riff(
            WAVBytes.chunk("LIST", Array("INFOabc".utf8))  // 7 bytes + pad
                + WAVBytes.chunk("fmt ", WAVBytes.formatBody())
                + WAVBytes.chunk("junk", [1, 2, 3, 4, 5])  // 5 bytes + pad
                + WAVBytes.chunk("data", WAVBytes.sampleBytes(samples))
                + WAVBytes.chunk("id3 ", [0xFF])  // trailing odd chunk + pad
        )
        #expect(try WAVFile.read(bytes: bytes) == PCMAudio(sampleRate: 16_000, channels: 1, samples: samples))
    }

    @Test("a RIFF size larger than the file is tolerated; trailing bytes ignored")
    func lenientRIFFSize() throws {
        var bytes = WAVBytes.riff(
            WAVBytes.chunk("fmt ", WAVBytes.formatBody()) + WAVBytes.chunk("data", WAVBytes.sampleBytes([5, 6])),
            declaredSize: 0xFFFF_FFFF)
        bytes += [0, 0, 0]  // fewer than a chunk header
        #expect(try WAVFile.read(bytes: bytes).samples == [5, 6])
    }

    @Test("an empty data chunk gives empty audio")
    func emptyData() throws {
        let audio = try WAVFile.read(bytes: WAVBytes.file(samples: []))
        #expect(audio.samples.isEmpty)
        #expect(audio.sampleRate == 16_000)
    }

    // MARK: Errors

    struct BadFile: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: [UInt8]
        let error: WAVError
        let mentions: String
        var testDescription: String { name }
    }

    static let badFiles: [BadFile] = {
        let valid = WAVBytes.file()
        let data = WAVBytes.chunk("data", WAVBytes.sampleBytes([1, 2]))
        func withFormat(_ format: [UInt8]) -> [UInt8] { WAVBytes.riff(WAVBytes.chunk("fmt ", format) + data) }
        return [
            BadFile(name: "empty", bytes: [], error: .notRIFF, mentions: "RIFF"),
            BadFile(name: "not RIFF", bytes: Array("RIFX".utf8) + valid[4...], error: .notRIFF, mentions: "RIFF"),
            BadFile(
                name: "short RIFF header", bytes: Array(valid[0..<10]),
                error: .truncatedChunk(id: "RIFF", declaredSize: Int(valid.count - 8), available: 2), mentions: "truncated"),
            BadFile(name: "not WAVE", bytes: WAVBytes.riff([], form: "AVI "), error: .notWAVE, mentions: "WAVE"),
            BadFile(name: "missing fmt", bytes: WAVBytes.riff(data), error: .missingFormatChunk, mentions: "'fmt '"),
            BadFile(
                name: "missing data", bytes: WAVBytes.riff(WAVBytes.chunk("fmt ", WAVBytes.formatBody())),
                error: .missingDataChunk, mentions: "'data'"),
            BadFile(
                name: "short fmt", bytes: withFormat(Array(WAVBytes.formatBody()[0..<14])),
                error: .formatChunkTooShort(size: 14, required: 16), mentions: "fmt "),
            BadFile(
                name: "IEEE float", bytes: withFormat(WAVBytes.formatBody(tag: 3, bits: 32)),
                error: .unsupportedFormat(tag: 3), mentions: "IEEE float"),
            BadFile(
                name: "A-law", bytes: withFormat(WAVBytes.formatBody(tag: 6, bits: 8)),
                error: .unsupportedFormat(tag: 6), mentions: "A-law"),
            BadFile(
                name: "extensible float", bytes: withFormat(WAVBytes.extensibleFormatBody(subformatTag: 3)),
                error: .unsupportedFormat(tag: 3), mentions: "IEEE float"),
            BadFile(
                name: "extensible non-standard GUID",
                bytes: withFormat(WAVBytes.extensibleFormatBody(guidTail: [UInt8](repeating: 0xAB, count: 14))),
                error: .unsupportedSubformat(guid: "ABAB0001-ABAB-ABAB-ABAB-ABABABABABAB"), mentions: "sub-format"),
            BadFile(
                name: "short extensible fmt", bytes: withFormat(Array(WAVBytes.extensibleFormatBody()[0..<24])),
                error: .formatChunkTooShort(size: 24, required: 40), mentions: "40"),
            BadFile(
                name: "24-bit", bytes: withFormat(WAVBytes.formatBody(bits: 24)),
                error: .unsupportedBitsPerSample(24), mentions: "24 bits"),
            BadFile(
                name: "8-bit", bytes: withFormat(WAVBytes.formatBody(bits: 8)),
                error: .unsupportedBitsPerSample(8), mentions: "8 bits"),
            BadFile(
                name: "3 channels", bytes: withFormat(WAVBytes.formatBody(channels: 3)),
                error: .unsupportedChannelCount(3), mentions: "channel count 3"),
            BadFile(
                name: "0 channels", bytes: withFormat(WAVBytes.formatBody(channels: 0)),
                error: .unsupportedChannelCount(0), mentions: "channel count 0"),
            BadFile(
                name: "44.1 kHz", bytes: withFormat(WAVBytes.formatBody(sampleRate: 44_100)),
                error: .unsupportedSampleRate(44_100), mentions: "44100 Hz"),
            BadFile(
                name: "bad block align", bytes: withFormat(WAVBytes.formatBody(channels: 2, blockAlign: 2)),
                error: .inconsistentBlockAlign(declared: 2, expected: 4), mentions: "block align"),
            BadFile(
                name: "bad byte rate", bytes: withFormat(WAVBytes.formatBody(byteRate: 12_345)),
                error: .inconsistentByteRate(declared: 12_345, expected: 32_000), mentions: "byte rate"),
            BadFile(
                name: "truncated data",
                bytes: WAVBytes.riff(
                    WAVBytes.chunk("fmt ", WAVBytes.formatBody())
                        + WAVBytes.chunk("data", WAVBytes.sampleBytes([1, 2]), declaredSize: 100)),
                error: .truncatedChunk(id: "data", declaredSize: 100, available: 4), mentions: "'data'"),
            BadFile(
                name: "truncated LIST",
                bytes: WAVBytes.riff(
                    WAVBytes.chunk("fmt ", WAVBytes.formatBody()) + data
                        + WAVBytes.chunk("LIST", [1, 2], declaredSize: 50)),
                error: .truncatedChunk(id: "LIST", declaredSize: 50, available: 2), mentions: "'LIST'"),
            BadFile(
                name: "truncated fmt", bytes: WAVBytes.riff(WAVBytes.chunk("fmt ", Array(WAVBytes.formatBody()[0..<8]), declaredSize: 16)),
                error: .truncatedChunk(id: "fmt ", declaredSize: 16, available: 8), mentions: "truncated"),
            BadFile(
                name: "odd data size for 16-bit",
                bytes: WAVBytes.riff(WAVBytes.chunk("fmt ", WAVBytes.formatBody()) + WAVBytes.chunk("data", [1, 2, 3])),
                error: .dataSizeNotFrameMultiple(bytes: 3, frameSize: 2), mentions: "multiple"),
            BadFile(
                name: "half a stereo frame",
                bytes: WAVBytes.riff(
                    WAVBytes.chunk("fmt ", WAVBytes.formatBody(channels: 2))
                        + WAVBytes.chunk("data", WAVBytes.sampleBytes([1, 2, 3]))),
                error: .dataSizeNotFrameMultiple(bytes: 6, frameSize: 4), mentions: "4-byte frame"),
            BadFile(
                name: "huge data size",
                bytes: WAVBytes.riff(
                    WAVBytes.chunk("fmt ", WAVBytes.formatBody())
                        + WAVBytes.chunk("data", [], declaredSize: 0xFFFF_FFF0)),
                error: .dataTooLarge(bytes: 0xFFFF_FFF0, limit: WAVFile.maximumDataSize), mentions: "limit"),
        ]
    }()

    @Test("malformed and unsupported files give the exact error", arguments: badFiles)
    func rejectsBadFile(_ bad: BadFile) {
        #expect(throws: bad.error) { try WAVFile.read(bytes: bad.bytes) }
        #expect(bad.error.description.contains(bad.mentions), "\(bad.error)")
        #expect(!bad.error.description.contains("\n"))
    }

    @Test("the unsupported-rate message says what to use")
    func sampleRateMessage() {
        #expect(
            WAVError.unsupportedSampleRate(44_100).description
                == "WAV sample rate 44100 Hz is not supported; use 8000, 12000, 16000, 24000 or 48000 Hz")
    }

    @Test("a data size just over the limit is rejected before allocation, even if present")
    func dataLimitBoundary() throws {
        let limit = WAVFile.maximumDataSize
        let bytes = WAVBytes.riff(
            WAVBytes.chunk("fmt ", WAVBytes.formatBody())
                + WAVBytes.chunk("data", [], declaredSize: UInt32(limit + 2)))
        #expect(throws: WAVError.dataTooLarge(bytes: limit + 2, limit: limit)) { try WAVFile.read(bytes: bytes) }
        // At the limit the size is acceptable, so the (absent) bytes are what is reported.
        let atLimit = WAVBytes.riff(
            WAVBytes.chunk("fmt ", WAVBytes.formatBody())
                + WAVBytes.chunk("data", [], declaredSize: UInt32(limit)))
        #expect(throws: WAVError.truncatedChunk(id: "data", declaredSize: limit, available: 0)) {
            try WAVFile.read(bytes: atLimit)
        }
    }

    // MARK: File errors

    @Test("a missing file names its path")
    func missingFile() {
        let path = temporaryPath("does-not-exist.wav")
        #expect(throws: WAVError.fileNotFound(path: path)) { try WAVFile.read(path: path) }
        #expect(WAVError.fileNotFound(path: path).description.contains(path))
    }

    @Test("a directory is unreadable, with its path")
    func directoryIsUnreadable() throws {
        let path = NSTemporaryDirectory()
        let error = try #require(throws: WAVError.self) { try WAVFile.read(path: path) }
        guard case .fileUnreadable(let reported, _) = error else {
            Issue.record("expected fileUnreadable, got \(error)")
            return
        }
        #expect(reported == path)
        #expect(error.description.contains(path))
    }

    @Test("an oversized file is rejected from its size, before reading")
    func oversizedFile() throws {
        let path = temporaryPath("huge.wav")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(WAVBytes.file())))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(WAVFile.maximumFileSize) + 1)  // sparse: no disk used
        try handle.close()
        #expect(throws: WAVError.fileTooLarge(path: path, bytes: UInt64(WAVFile.maximumFileSize) + 1, limit: WAVFile.maximumFileSize)) {
            try WAVFile.read(path: path)
        }
    }

    @Test("writing to an impossible path names it")
    func unwritablePath() {
        let path = temporaryPath("no-such-dir/out.wav")
        let audio = PCMAudio(sampleRate: 48_000, channels: 1, samples: [0])
        let error = #expect(throws: WAVError.self) { try WAVFile.write(audio, to: path) }
        #expect(error == .fileUnwritable(path: path, reason: "No such file or directory"))
        #expect(error?.description.contains(path) == true)
    }

    @Test("writing rejects formats the reader would reject")
    func writeValidation() {
        #expect(throws: WAVError.unsupportedSampleRate(44_100)) {
            try WAVFile.write(PCMAudio(sampleRate: 44_100, channels: 1, samples: []))
        }
        #expect(throws: WAVError.unsupportedChannelCount(6)) {
            try WAVFile.write(PCMAudio(sampleRate: 48_000, channels: 6, samples: []))
        }
        #expect(throws: WAVError.dataSizeNotFrameMultiple(bytes: 6, frameSize: 4)) {
            try WAVFile.write(PCMAudio(sampleRate: 48_000, channels: 2, samples: [1, 2, 3]))
        }
    }

    private func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "conclave-media-\(UInt64.random(in: 0...UInt64.max))-" + name
    }
}
