import ConclaveMedia
import Testing

@Suite("Generators")
struct GeneratorTests {
    @Test("noise is deterministic per seed and differs across seeds")
    func noiseDeterminism() {
        var a = NoiseGenerator(seed: 1234)
        var b = NoiseGenerator(seed: 1234)
        var c = NoiseGenerator(seed: 1235)
        let first = a.generate(frameCount: 4_800)
        #expect(first == b.generate(frameCount: 4_800))
        let other = c.generate(frameCount: 4_800)
        #expect(first != other)
        #expect(zip(first, other).filter { $0 == $1 }.count < 100, "different seeds give unrelated streams")
        // The stream continues rather than restarting.
        #expect(a.generate(frameCount: 4_800) != first)
    }

    @Test("noise respects its amplitude and is roughly white")
    func noiseLevel() {
        var noise = NoiseGenerator(seed: 9, amplitude: 0.25, channels: 2)
        let samples = noise.generate(frameCount: 48_000)
        #expect(samples.count == 96_000)
        #expect(AudioLevel.peak(samples) <= 0.25)
        // Uniform in ±a has RMS a/√3.
        #expect(abs(AudioLevel.rms(samples) - 0.25 / 3.0.squareRoot()) < 0.005)
        let mean = Double(samples.reduce(0) { $0 + Int($1) }) / Double(samples.count)
        #expect(abs(mean) < 100)
        #expect(channel(0, of: samples, channels: 2) != channel(1, of: samples, channels: 2))
    }

    @Test("SplitMix64 matches the reference sequence")
    func splitMixReference() {
        // Reference values for seed 0 from the original C implementation.
        var random = SplitMix64(seed: 0)
        #expect(random.next() == 0xE220_A839_7B1D_CDAF)
        #expect(random.next() == 0x6E78_9E6A_A1B9_65F4)
    }

    @Test("two half calls equal one full call", arguments: [1, 2])
    func tonePhaseContinuity(channels: Int) {
        var whole = ToneGenerator(frequency: 441.7, amplitude: 0.9, channels: channels)
        var split = whole
        let full = whole.generate(frameCount: 4_801)
        let halves = split.generate(frameCount: 2_400) + split.generate(frameCount: 2_401)
        #expect(full == halves)
        #expect(whole.phase == split.phase)
        // Many tiny calls too, through the non-allocating API.
        var tiny = ToneGenerator(frequency: 441.7, amplitude: 0.9, channels: channels)
        var pieces: [Int16] = []
        var buffer = [Int16](repeating: 0, count: 7 * channels)
        for _ in 0..<(4_801 / 7) {
            buffer.withUnsafeMutableBufferPointer { tiny.fill($0) }
            pieces += buffer
        }
        #expect(pieces == Array(full.prefix(pieces.count)))
    }

    @Test("tone level, channels and frequency are as configured")
    func toneShape() throws {
        var tone = ToneGenerator(frequency: 1_000, amplitude: 0.5, sampleRate: 16_000, channels: 2)
        let samples = tone.generate(frameCount: 16_000)
        #expect(channel(0, of: samples, channels: 2) == channel(1, of: samples, channels: 2))
        #expect(abs(AudioLevel.peak(samples) - 0.5) < 0.001)
        #expect(abs(AudioLevel.rms(samples) - 0.5 / 2.0.squareRoot()) < 0.001)
        #expect(samples[0] == 0)
        let frequency = try #require(DominantFrequency.estimate(samples: samples, sampleRate: 16_000, channels: 2))
        #expect(abs(frequency - 1_000) < 1)
    }

    @Test("silence is all zeros")
    func silence() {
        var silence = SilenceGenerator(channels: 2)
        var buffer = [Int16](repeating: 123, count: 10)
        buffer.withUnsafeMutableBufferPointer { silence.fill($0) }
        #expect(buffer == [Int16](repeating: 0, count: 10))
        #expect(silence.generate(frameCount: 3).count == 6)
    }
}
