import ConclaveProtocol
import FuzzSupport

/// Relay→client messages (5.3): decode never traps; what decodes re-encodes byte for byte.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let m = try? RelayMessage.decode(bytes) {
        precondition(m.encoded() == bytes, "RelayMessage did not round-trip")
    }
    return 0
}
