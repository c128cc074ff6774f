import ConclaveMedia
import FuzzSupport

/// WAV files (`--send-audio FILE`): reading any bytes never traps; audio that reads
/// writes out as a WAV that reads back to the same audio.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let audio = try? WAVFile.read(bytes: bytes), let written = try? WAVFile.write(audio) {
        precondition((try? WAVFile.read(bytes: written)) == audio, "WAV did not round-trip")
    }
    return 0
}
