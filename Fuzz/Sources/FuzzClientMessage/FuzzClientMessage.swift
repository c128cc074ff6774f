import ConclaveProtocol
import FuzzSupport

/// Client→relay messages (5.3): decode never traps, and what decodes re-encodes to the
/// same bytes (each message has exactly one encoding, 5.1).
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let m = try? ClientMessage.decode(bytes) {
        precondition(m.encoded() == bytes, "ClientMessage did not round-trip")
    }
    return 0
}
