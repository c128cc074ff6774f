import ConclaveProtocol
import FuzzSupport

/// Key wraps (3.4.1): parsing never traps; what parses re-encodes byte for byte.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let w = try? KeyWrap(encoded: bytes) {
        precondition(w.encoded == bytes, "KeyWrap did not round-trip")
    }
    return 0
}
