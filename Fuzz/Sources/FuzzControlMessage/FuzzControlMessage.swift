import ConclaveProtocol
import FuzzSupport

/// End-to-end control messages (3.6: ROSTER, ROSTER_DELTA, HANDOVER, KNOCK_NOTICE,
/// HEARTBEAT, MODERATION_REQUEST, CONTROL_PART): decode never traps; what decodes
/// re-encodes byte for byte (signatures are not checked by the decoder).
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let m = try? E2EControlMessage.decode(bytes) {
        precondition(m.encoded == bytes, "E2EControlMessage did not round-trip")
    }
    return 0
}
