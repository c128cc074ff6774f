import ConclaveMedia
import Foundation
import Testing

@Suite("Pipeline: streaming WAV writer")
struct PipelineWAVStreamWriterTests {
    @Test("appended samples read back exactly with WAVFile, across several buffer flushes")
    func roundTrip() throws {
        let path = pipelineTemporaryPath("stream.wav")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var tone = ToneGenerator(frequency: 440, amplitude: 0.7)
        let samples = tone.generate(frameCount: 100_000)  // 200 000 bytes: three 64 KiB flushes and a tail
        let writer = try WAVStreamWriter(path: path)
        var offset = 0
        for size in [1, 959, 960, 40_000, 58_080] {
            try writer.append(Array(samples[offset..<(offset + size)]))
            offset += size
        }
        #expect(offset == samples.count)
        #expect(writer.dataBytes == 200_000)
        #expect(abs(writer.duration - 100_000.0 / 48_000) < 1e-9)
        try writer.finish()

        let audio = try WAVFile.read(path: path)
        #expect(audio == PCMAudio(sampleRate: 48_000, channels: 1, samples: samples))
        // The header is the canonical one WAVFile.write produces.
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(written == (try WAVFile.write(audio)))
    }

    @Test("stereo at 16 kHz, an empty recording, and replacing an existing file")
    func formats() throws {
        let path = pipelineTemporaryPath("stereo.wav")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(repeating: 0x5A, count: 100_000).write(to: URL(fileURLWithPath: path))
        let samples: [Int16] = [1, -1, 32_767, -32_768, 0, 7]
        let writer = try WAVStreamWriter(path: path, sampleRate: 16_000, channels: 2)
        try writer.append(samples)
        try writer.finish()
        #expect(try WAVFile.read(path: path) == PCMAudio(sampleRate: 16_000, channels: 2, samples: samples))

        let empty = try WAVStreamWriter(path: path)
        try empty.finish()
        #expect(try WAVFile.read(path: path) == PCMAudio(sampleRate: 48_000, channels: 1, samples: []))
    }

    @Test("the size limit stops an append whole, and the file stays valid")
    func limit() throws {
        let path = pipelineTemporaryPath("limited.wav")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let limit = WAVStreamWriter.maximumDataBytes(seconds: 0.01)  // 480 samples
        #expect(limit == 960)
        let writer = try WAVStreamWriter(path: path, maximumDataBytes: limit)
        try writer.append([Int16](repeating: 3, count: 400))
        do {
            try writer.append([Int16](repeating: 4, count: 81))
            Issue.record("append past the limit succeeded")
        } catch {
            #expect(error == .limitReached(path: path, limitBytes: 960, limitSeconds: 0.01))
            #expect(error.description.contains(path))
            #expect(error.description.contains("960 bytes"))
        }
        try writer.append([Int16](repeating: 5, count: 80))  // exactly up to the limit
        try writer.finish()
        let audio = try WAVFile.read(path: path)
        #expect(audio.samples == [Int16](repeating: 3, count: 400) + [Int16](repeating: 5, count: 80))
    }

    @Test("misuse and I/O failures are typed errors naming the path")
    func errors() throws {
        let directory = pipelineTemporaryPath("no-such-dir")
        let path = directory + "/out.wav"
        do {
            _ = try WAVStreamWriter(path: path)
            Issue.record("created a file in a missing directory")
        } catch {
            guard case .cannotCreate(let failedPath, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(failedPath == path)
            #expect(!reason.isEmpty)
            #expect(error.description.hasPrefix("WAV recording \(path) could not be created"))
        }
        #expect(throws: WAVStreamWriterError.unsupportedFormat(path: path, sampleRate: 44_100, channels: 1)) {
            try WAVStreamWriter(path: path, sampleRate: 44_100)
        }
        #expect(throws: WAVStreamWriterError.invalidLimit(path: path, bytes: -1)) {
            try WAVStreamWriter(path: path, maximumDataBytes: -1)
        }

        let good = pipelineTemporaryPath("misuse.wav")
        defer { try? FileManager.default.removeItem(atPath: good) }
        let writer = try WAVStreamWriter(path: good, channels: 2)
        #expect(throws: WAVStreamWriterError.notWholeFrames(path: good, samples: 3, channels: 2)) {
            try writer.append([1, 2, 3])
        }
        try writer.finish()
        #expect(throws: WAVStreamWriterError.finished(path: good)) { try writer.finish() }
        #expect(throws: WAVStreamWriterError.finished(path: good)) { try writer.append([1, 2]) }
    }

    @Test("a writer released without finish() still leaves a valid file")
    func finishOnRelease() throws {
        let path = pipelineTemporaryPath("released.wav")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let writer = try WAVStreamWriter(path: path)
            try writer.append([10, 20, 30])
        }
        #expect(try WAVFile.read(path: path).samples == [10, 20, 30])
    }
}
