import ConclaveMedia
import Foundation
import Testing

@Suite("Pipeline: audio sources")
struct PipelineAudioSourceTests {
    /// The next frame, which must exist.
    static func frame(_ source: inout AudioSource, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Int16] {
        let frame = source.nextFrame()
        return try #require(frame, sourceLocation: sourceLocation)
    }

    // MARK: Parsing

    @Test("parses tone, noise, silence and paths")
    func parsing() throws {
        #expect(try AudioSourceSpec(parsing: "tone:440") == .tone(frequency: 440))
        #expect(try AudioSourceSpec(parsing: "tone:20") == .tone(frequency: 20))
        #expect(try AudioSourceSpec(parsing: "tone:20000") == .tone(frequency: 20_000))
        #expect(try AudioSourceSpec(parsing: "tone:440.5") == .tone(frequency: 440.5))
        #expect(try AudioSourceSpec(parsing: "noise") == .noise)
        #expect(try AudioSourceSpec(parsing: "silence") == .silence)
        #expect(try AudioSourceSpec(parsing: "voice.wav") == .wav(path: "voice.wav"))
        #expect(try AudioSourceSpec(parsing: "./noise") == .wav(path: "./noise"))
    }

    @Test(
        "rejects bad specs with one clear line", arguments: ["", "tone", "tone:", "tone:abc", "tone:19.9", "tone:20001", "tone:nan", "tone:inf", "tone:-440"])
    func badSpecs(text: String) {
        do {
            _ = try AudioSourceSpec(parsing: text)
            Issue.record("'\(text)' was accepted")
        } catch {
            guard case .invalidSpec(let quoted, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(quoted == text)
            #expect(error.description.contains("'\(text)'"))
            #expect(error.description.contains("tone:FREQ, noise, silence or a WAV file path"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test("an unreadable WAV reports the path and the WAVError")
    func unreadableWAV() throws {
        let missing = pipelineTemporaryPath("missing.wav")
        #expect(throws: AudioSourceError.unreadableWAV(path: missing, .fileNotFound(path: missing))) {
            try AudioSource(parsing: missing)
        }
        let garbage = pipelineTemporaryPath("garbage.wav")
        try Data("not a wav file".utf8).write(to: URL(fileURLWithPath: garbage))
        defer { try? FileManager.default.removeItem(atPath: garbage) }
        do {
            _ = try AudioSource(parsing: garbage)
            Issue.record("garbage accepted")
        } catch {
            #expect(error == .unreadableWAV(path: garbage, .notRIFF))
            #expect(error.description.hasPrefix("audio source \(garbage): not a WAV file"))
        }
        #expect(throws: AudioSourceError.emptyWAV(path: "empty")) {
            try AudioSource(audio: PCMAudio(sampleRate: 48_000, channels: 1, samples: []), name: "empty")
        }
        #expect(throws: AudioSourceError.unreadableWAV(path: "m", .unsupportedSampleRate(44_100))) {
            try AudioSource(audio: PCMAudio(sampleRate: 44_100, channels: 1, samples: [1]), name: "m")
        }
    }

    // MARK: Generated sources

    @Test("tone:440 produces 20 ms frames at 440 Hz")
    func tone() throws {
        var source = try AudioSource(parsing: "tone:440")
        var samples: [Int16] = []
        for _ in 0..<50 {
            let frame = try Self.frame(&source)
            #expect(frame.count == 960)
            samples += frame
        }
        let frequency = try #require(DominantFrequency.estimate(samples: samples, sampleRate: 48_000))
        #expect(relativeError(frequency, 440) < 0.005, "\(frequency) Hz")
        #expect(abs(AudioLevel.peak(samples) - 0.5) < 0.01)
        #expect(!source.isFinished)
    }

    @Test("silence is zeros and noise is reproducible and not silent")
    func silenceAndNoise() throws {
        var silence = try AudioSource(parsing: "silence")
        #expect(silence.nextFrame() == [Int16](repeating: 0, count: 960))
        var a = try AudioSource(parsing: "noise", noiseSeed: 7)
        var b = try AudioSource(parsing: "noise", noiseSeed: 7)
        let frameA = try Self.frame(&a)
        #expect(frameA == b.nextFrame())
        #expect(AudioLevel.rms(frameA) > 0.1)
    }

    // MARK: WAV sources

    @Test("a 16 kHz WAV is resampled to 48 kHz with its tone frequency preserved")
    func resampled16k() throws {
        var tone = ToneGenerator(frequency: 440, amplitude: 0.5, sampleRate: 16_000)
        let input = tone.generate(frameCount: 16_000)
        let path = pipelineTemporaryPath("tone16k.wav")
        try WAVFile.write(PCMAudio(sampleRate: 16_000, channels: 1, samples: input), to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }

        var source = try AudioSource(parsing: path, loop: false)
        #expect(source.convertedSampleCount == 48_000)
        var output: [Int16] = []
        while let frame = source.nextFrame() { output += frame }
        #expect(output.count == 48_000)  // 50 whole frames, no padding needed
        #expect(source.isFinished)
        let frequency = try #require(DominantFrequency.estimate(samples: output, sampleRate: 48_000))
        #expect(relativeError(frequency, 440) < 0.02, "\(frequency) Hz")
        #expect(abs(AudioLevel.rms(output) - AudioLevel.rms(input)) / AudioLevel.rms(input) < 0.05)
        // Every third output sample is an input sample.
        for index in stride(from: 0, to: 300, by: 3) { #expect(output[index] == input[index / 3]) }
    }

    @Test("linear interpolation between input samples, holding the last one")
    func interpolation() throws {
        // 8 kHz → 48 kHz: 6 output samples per input sample.
        let audio = PCMAudio(sampleRate: 8_000, channels: 1, samples: [0, 600, -600])
        var source = try AudioSource(audio: audio, loop: false)
        let frame = try Self.frame(&source)
        #expect(Array(frame[0..<18]) == [0, 100, 200, 300, 400, 500, 600, 400, 200, 0, -200, -400, -600, -600, -600, -600, -600, -600])
        #expect(frame[18...].allSatisfy { $0 == 0 })
        #expect(source.isFinished)
        #expect(source.nextFrame() == nil)

        // Looping interpolates across the loop point instead.
        var looping = try AudioSource(audio: audio, loop: true)
        let loopFrame = try Self.frame(&looping)
        #expect(Array(loopFrame[12..<24]) == [-600, -500, -400, -300, -200, -100, 0, 100, 200, 300, 400, 500])
    }

    @Test("stereo is averaged to mono")
    func stereoAverage() throws {
        let samples: [Int16] = [1_000, 3_000, -2_000, 2_000, 32_767, 32_767, -32_768, -32_768, 5, 6]
        var source = try AudioSource(audio: PCMAudio(sampleRate: 48_000, channels: 2, samples: samples), loop: false)
        let frame = try Self.frame(&source)
        #expect(Array(frame[0..<5]) == [2_000, 0, 32_767, -32_768, 5])

        var tone = ToneGenerator(frequency: 660, amplitude: 0.4, sampleRate: 24_000, channels: 2)
        let stereo = PCMAudio(sampleRate: 24_000, channels: 2, samples: tone.generate(frameCount: 24_000))
        var toneSource = try AudioSource(audio: stereo, loop: false)
        var output: [Int16] = []
        while let next = toneSource.nextFrame() { output += next }
        let frequency = try #require(DominantFrequency.estimate(samples: output, sampleRate: 48_000))
        #expect(relativeError(frequency, 660) < 0.02)
    }

    @Test("a WAV file ends with a zero-padded frame, or loops")
    func endOrLoop() throws {
        let ramp = (0..<1_000).map { Int16($0) }
        let audio = PCMAudio(sampleRate: 48_000, channels: 1, samples: ramp)

        var once = try AudioSource(audio: audio, loop: false)
        let first = try Self.frame(&once)
        #expect(first == Array(ramp[0..<960]))
        let second = try Self.frame(&once)
        #expect(Array(second[0..<40]) == Array(ramp[960...]))
        #expect(second[40...].allSatisfy { $0 == 0 })
        #expect(once.isFinished)
        #expect(once.nextFrame() == nil)

        var looping = try AudioSource(audio: audio, loop: true)
        _ = looping.nextFrame()
        let wrapped = try Self.frame(&looping)
        #expect(Array(wrapped[0..<40]) == Array(ramp[960...]))
        #expect(Array(wrapped[40..<960]) == Array(ramp[0..<920]))
        for _ in 0..<100 { #expect(looping.nextFrame() != nil) }
        #expect(!looping.isFinished)
    }
}
