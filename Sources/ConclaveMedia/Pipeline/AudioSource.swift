/// What to send as audio, as written on a command line.
///
/// | Text | Meaning |
/// |---|---|
/// | `tone:FREQ` | a sine tone of FREQ Hz, 20…20 000 (decimals allowed) |
/// | `noise` | seeded white noise |
/// | `silence` | digital silence |
/// | anything else | the path of a 16-bit PCM WAV file (mono or stereo, at an Opus rate) |
///
/// A file literally named `noise` or `silence` can be given as `./noise`.
public enum AudioSourceSpec: Sendable, Equatable, CustomStringConvertible {
    case tone(frequency: Double)
    case noise
    case silence
    case wav(path: String)

    /// The tone frequencies accepted (Hz).
    public static let toneFrequencyRange: ClosedRange<Double> = 20...20_000

    /// Parses `text`; see the type's documentation for the syntax.
    ///
    /// - Throws: ``AudioSourceError/invalidSpec(_:reason:)`` for an empty
    ///   text or a `tone:` whose frequency is not a number in 20…20 000.
    ///   A WAV path is not opened here.
    public init(parsing text: String) throws(AudioSourceError) {
        if text.isEmpty {
            throw .invalidSpec(text, reason: "it is empty")
        }
        if text == "noise" {
            self = .noise
        } else if text == "silence" {
            self = .silence
        } else if text == "tone" || text.hasPrefix("tone:") {
            let number = text.dropFirst(5)
            guard let frequency = Double(number), frequency.isFinite,
                Self.toneFrequencyRange.contains(frequency)
            else {
                throw .invalidSpec(text, reason: "the tone frequency must be a number from 20 to 20000 Hz, as in tone:440")
            }
            self = .tone(frequency: frequency)
        } else {
            self = .wav(path: text)
        }
    }

    public var description: String {
        switch self {
        case .tone(let frequency): return "tone:\(frequency)"
        case .noise: return "noise"
        case .silence: return "silence"
        case .wav(let path): return path
        }
    }
}

/// Why an audio source could not be set up. Each description is one line.
public enum AudioSourceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The source text is not `tone:FREQ`, `noise`, `silence` or a path.
    case invalidSpec(String, reason: String)
    /// The WAV file could not be read or is not in a supported format.
    case unreadableWAV(path: String, WAVError)
    /// The WAV file holds no samples.
    case emptyWAV(path: String)

    public var description: String {
        switch self {
        case .invalidSpec(let text, let reason):
            return "audio source '\(text)' is not valid: \(reason); use tone:FREQ, noise, silence or a WAV file path"
        case .unreadableWAV(let path, let error):
            return "audio source \(path): \(error)"
        case .emptyWAV(let path):
            return "audio source \(path): the WAV file holds no samples"
        }
    }
}

/// Produces the audio Conclave sends: 20 ms frames of mono 48 kHz PCM
/// (960 samples), on demand, from a tone, noise, silence or a WAV file.
///
/// WAV input is converted as it is read, without a second copy of the file:
/// - stereo → mono by averaging the two channels (`(L + R) >> 1`);
/// - a rate below 48 kHz → 48 kHz by **linear interpolation** between
///   neighbouring input samples. Every rate Opus supports divides 48 000, so
///   the input advances by exactly 1/6, 1/4, 1/3 or 1/2 sample per output
///   sample. This is a simple resampler with no anti-imaging filter: it keeps
///   tones and speech intelligible and their frequencies exact, not hi-fi.
///   Between the last input sample and the first (when looping) it
///   interpolates across the loop point; at the end of a non-looping file it
///   holds the last sample.
///
/// A looping WAV source restarts at its first sample and never ends; a
/// non-looping one pads its last frame with zeros and then reports the end.
/// Generated sources never end.
public struct AudioSource: Sendable {
    /// Samples in one frame: 20 ms at 48 kHz, mono.
    public static let frameSamples = 960

    /// Default peak amplitude of generated tone and noise (half of full scale).
    public static let defaultAmplitude = 0.5

    private enum Kind: Sendable {
        case tone(ToneGenerator)
        case noise(NoiseGenerator)
        case silence
        case file(FileReader)
    }

    private var kind: Kind
    /// Whether a non-looping WAV source has delivered its last frame.
    public private(set) var isFinished = false
    /// What this source was made from.
    public let spec: AudioSourceSpec

    // MARK: Creating

    /// Creates a source from a parsed spec, reading a WAV file if it names one.
    ///
    /// - Parameters:
    ///   - loop: for a WAV file, restart at its beginning (default) instead
    ///     of ending. Ignored by generated sources.
    ///   - amplitude: peak of a tone or noise, 0…1 of full scale.
    ///   - noiseSeed: seed of the noise generator (same seed, same samples).
    /// - Throws: ``AudioSourceError/unreadableWAV(path:_:)`` or
    ///   ``AudioSourceError/emptyWAV(path:)``; ``AudioSourceError/invalidSpec(_:reason:)``
    ///   for a tone outside 20…20 000 Hz or an amplitude outside 0…1.
    public init(spec: AudioSourceSpec, loop: Bool = true, amplitude: Double = defaultAmplitude, noiseSeed: UInt64 = 1) throws(AudioSourceError) {
        guard amplitude.isFinite, (0...1).contains(amplitude) else {
            throw .invalidSpec(spec.description, reason: "the amplitude \(amplitude) is not in 0...1")
        }
        self.spec = spec
        switch spec {
        case .tone(let frequency):
            guard frequency.isFinite, AudioSourceSpec.toneFrequencyRange.contains(frequency) else {
                throw .invalidSpec(spec.description, reason: "the tone frequency must be a number from 20 to 20000 Hz, as in tone:440")
            }
            kind = .tone(ToneGenerator(frequency: frequency, amplitude: amplitude, sampleRate: AudioFormat.productSampleRate))
        case .noise:
            kind = .noise(NoiseGenerator(seed: noiseSeed, amplitude: amplitude))
        case .silence:
            kind = .silence
        case .wav(let path):
            let audio: PCMAudio
            do {
                audio = try WAVFile.read(path: path)
            } catch {
                throw .unreadableWAV(path: path, error)
            }
            kind = .file(try FileReader(audio: audio, name: path, loop: loop))
        }
    }

    /// Parses `text` (``AudioSourceSpec/init(parsing:)``) and creates the source.
    public init(parsing text: String, loop: Bool = true, amplitude: Double = defaultAmplitude, noiseSeed: UInt64 = 1) throws(AudioSourceError) {
        try self.init(spec: AudioSourceSpec(parsing: text), loop: loop, amplitude: amplitude, noiseSeed: noiseSeed)
    }

    /// Creates a source from audio already in memory, converted like a WAV
    /// file. `name` is used in errors and as the spec's path.
    ///
    /// - Throws: ``AudioSourceError/unreadableWAV(path:_:)`` with
    ///   ``WAVError/unsupportedSampleRate(_:)`` or
    ///   ``WAVError/unsupportedChannelCount(_:)``, or ``AudioSourceError/emptyWAV(path:)``.
    public init(audio: PCMAudio, name: String = "memory", loop: Bool = true) throws(AudioSourceError) {
        self.spec = .wav(path: name)
        self.kind = .file(try FileReader(audio: audio, name: name, loop: loop))
    }

    // MARK: Producing

    /// Fills `frame` (exactly ``frameSamples`` samples) with the next 20 ms
    /// without allocating.
    ///
    /// - Returns: `false`, leaving `frame` zeroed, when a non-looping WAV
    ///   source had already ended; `true` otherwise (the last frame of a
    ///   file is padded with zeros).
    /// - Precondition: `frame.count == AudioSource.frameSamples`.
    public mutating func nextFrame(into frame: UnsafeMutableBufferPointer<Int16>) -> Bool {
        precondition(frame.count == Self.frameSamples, "a frame is \(Self.frameSamples) samples")
        if isFinished {
            frame.update(repeating: 0)
            return false
        }
        switch kind {
        case .tone(var generator):
            generator.fill(frame)
            kind = .tone(generator)
        case .noise(var generator):
            generator.fill(frame)
            kind = .noise(generator)
        case .silence:
            frame.update(repeating: 0)
        case .file(var reader):
            let more = reader.fill(frame)
            kind = .file(reader)
            if !more { isFinished = true }
        }
        return true
    }

    /// The next frame as a new array, or `nil` once a non-looping file has
    /// ended. Allocates; use ``nextFrame(into:)`` on a hot path.
    public mutating func nextFrame() -> [Int16]? {
        var frame = [Int16](repeating: 0, count: Self.frameSamples)
        let produced = frame.withUnsafeMutableBufferPointer { nextFrame(into: $0) }
        return produced ? frame : nil
    }

    /// For a WAV source: the length of the converted (48 kHz mono) audio in
    /// samples; `nil` for generated sources.
    public var convertedSampleCount: Int? {
        if case .file(let reader) = kind { return reader.outputLength }
        return nil
    }
}

// MARK: - WAV reading and conversion

/// Reads converted samples out of a decoded WAV file: channel averaging and
/// integer-ratio linear-interpolation upsampling to 48 kHz, one output
/// sample at a time.
private struct FileReader: Sendable {
    let samples: [Int16]
    let channels: Int
    /// Input frames (samples per channel).
    let inputFrames: Int
    /// Output samples per input frame: 48 000 / input rate.
    let factor: Int
    let loop: Bool
    /// Length of the converted audio in output samples.
    let outputLength: Int
    /// Index of the next output sample, 0..<outputLength.
    var position = 0

    init(audio: PCMAudio, name: String, loop: Bool) throws(AudioSourceError) {
        guard AudioFormat.isSupportedChannelCount(audio.channels) else {
            throw .unreadableWAV(path: name, .unsupportedChannelCount(audio.channels))
        }
        guard AudioFormat.isSupportedSampleRate(audio.sampleRate),
            AudioFormat.productSampleRate % audio.sampleRate == 0
        else {
            throw .unreadableWAV(path: name, .unsupportedSampleRate(audio.sampleRate))
        }
        guard audio.frameCount > 0 else { throw .emptyWAV(path: name) }
        samples = audio.samples
        channels = audio.channels
        inputFrames = audio.frameCount
        factor = AudioFormat.productSampleRate / audio.sampleRate
        self.loop = loop
        outputLength = inputFrames * factor
    }

    /// The mono value of input frame `index`.
    @inline(__always)
    private func mono(_ index: Int, _ buffer: UnsafeBufferPointer<Int16>) -> Int {
        if channels == 1 { return Int(buffer[index]) }
        return (Int(buffer[2 * index]) + Int(buffer[2 * index + 1])) >> 1
    }

    /// Fills `frame`; returns `false` when the file ended (non-looping) during
    /// or exactly at the end of this frame, after zero-padding the rest.
    mutating func fill(_ frame: UnsafeMutableBufferPointer<Int16>) -> Bool {
        samples.withUnsafeBufferPointer { buffer in
            var out = 0
            while out < frame.count {
                if position == outputLength {
                    if loop {
                        position = 0
                    } else {
                        frame[out...].update(repeating: 0)
                        return false
                    }
                }
                let index = position / factor
                let fraction = position % factor
                let current = mono(index, buffer)
                let value: Int
                if fraction == 0 {
                    value = current
                } else {
                    let nextIndex = index + 1 < inputFrames ? index + 1 : (loop ? 0 : index)
                    let following = mono(nextIndex, buffer)
                    // Round to nearest, halves away from zero; a convex
                    // combination of two Int16 values stays in range.
                    let numerator = current * (factor - fraction) + following * fraction
                    value =
                        numerator >= 0
                        ? (numerator + factor / 2) / factor
                        : -((-numerator + factor / 2) / factor)
                }
                frame[out] = Int16(value)
                out += 1
                position += 1
            }
            return loop || position < outputLength
        }
    }
}
