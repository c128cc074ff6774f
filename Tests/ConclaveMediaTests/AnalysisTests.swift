import ConclaveMedia
import Testing

@Suite("Analysis")
struct AnalysisTests {
    @Test(
        "dominant frequency of pure tones is accurate well under 1%",
        arguments: [(440.0, 48_000), (300.0, 48_000), (1_000.0, 48_000), (3_000.0, 8_000), (5_512.5, 24_000), (97.0, 16_000)])
    func pureTones(case: (frequency: Double, sampleRate: Int)) throws {
        var tone = ToneGenerator(frequency: `case`.frequency, amplitude: 0.3, sampleRate: `case`.sampleRate)
        let samples = tone.generate(frameCount: `case`.sampleRate / 2)  // 0.5 s
        let estimate = try #require(DominantFrequency.estimate(samples: samples, sampleRate: `case`.sampleRate))
        #expect(abs(estimate - `case`.frequency) / `case`.frequency < 0.001, "estimated \(estimate) Hz")
    }

    @Test("the louder of two tones wins, with a DC offset and noise present")
    func louderToneWins() throws {
        var loud = ToneGenerator(frequency: 700, amplitude: 0.4)
        var quiet = ToneGenerator(frequency: 2_500, amplitude: 0.1)
        var noise = NoiseGenerator(seed: 3, amplitude: 0.05)
        let mix = AudioMixer.mix([
            loud.generate(frameCount: 24_000), quiet.generate(frameCount: 24_000),
            noise.generate(frameCount: 24_000), [Int16](repeating: 3_000, count: 24_000),
        ])
        let estimate = try #require(DominantFrequency.estimate(samples: mix, sampleRate: 48_000))
        #expect(abs(estimate - 700) < 2, "estimated \(estimate) Hz")
    }

    @Test("silence and too-short input have no dominant frequency")
    func noEstimate() {
        #expect(DominantFrequency.estimate(samples: [Int16](repeating: 0, count: 4_800), sampleRate: 48_000) == nil)
        #expect(DominantFrequency.estimate(samples: [Int16](repeating: 500, count: 4_800), sampleRate: 48_000) == nil)
        #expect(DominantFrequency.estimate(samples: [1, 2, 3], sampleRate: 48_000) == nil)
        #expect(DominantFrequency.estimate(samples: [1, 2, 3, 4, 5, 6], sampleRate: 48_000, channels: 2) == nil)
    }

    @Test("RMS and dBFS")
    func levels() {
        var tone = ToneGenerator(frequency: 1_000, amplitude: 1)
        let fullScale = tone.generate(frameCount: 48_000)
        #expect(abs(AudioLevel.rms(fullScale) - 0.7071) < 0.001)
        #expect(abs(AudioLevel.decibelsFullScale(AudioLevel.rms(fullScale)) + 3.01) < 0.02)
        #expect(AudioLevel.rms([Int16](repeating: 0, count: 10)) == 0)
        #expect(AudioLevel.rms([]) == 0)
        #expect(AudioLevel.decibelsFullScale(0) == -.infinity)
        #expect(AudioLevel.rms([16_384, -16_384]) == 0.5)
    }

    @Test("the mixer sums and saturates")
    func mixerSaturates() {
        #expect(AudioMixer.mix([[30_000, -30_000, 100], [30_000, -30_000, 23]]) == [32_767, -32_768, 123])
        // Clipping happens once, at the end: order does not matter.
        #expect(AudioMixer.mix([[30_000], [30_000], [-30_000]]) == [30_000])
        #expect(AudioMixer.mix([[-30_000], [30_000], [30_000]]) == [30_000])
        // Shorter streams are silent after their end.
        #expect(AudioMixer.mix([[1, 2, 3], [10]]) == [11, 2, 3])
        #expect(AudioMixer.mix([]) == [])
    }

    @Test("a reused mixer mixes period after period into a caller buffer")
    func mixerReuse() {
        var mixer = AudioMixer(frameCount: 4)
        var output = [Int16](repeating: 0, count: 4)
        mixer.add([1, 2, 3, 4])
        mixer.add([Int16.max, 0, 0, 0])
        #expect(mixer.streamCount == 2)
        output.withUnsafeMutableBufferPointer { mixer.mix(into: $0) }
        #expect(output == [Int16.max, 2, 3, 4])
        #expect(mixer.mixed() == output)

        mixer.reset()
        #expect(mixer.streamCount == 0)
        #expect(mixer.mixed() == [0, 0, 0, 0])
        mixer.add([-5, 5])
        output.withUnsafeMutableBufferPointer { mixer.mix(into: $0) }
        #expect(output == [-5, 5, 0, 0])
    }
}
