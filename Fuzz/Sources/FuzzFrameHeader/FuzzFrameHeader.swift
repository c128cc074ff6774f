import ConclaveProtocol
import FuzzSupport

/// The 8-byte FRAME header the relay routes on (5.6): decode never traps; a header that
/// decodes re-encodes to the same 8 bytes, and its payload range lies inside the input.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let (header, range) = try? FrameHeader.decode(message: bytes) {
        var again: [UInt8] = []
        header.encode(into: &again)
        precondition(again == Array(bytes.prefix(FrameHeader.length)), "FrameHeader did not round-trip")
        precondition(range.lowerBound == FrameHeader.length && range.upperBound == bytes.count, "payload range")
    }
    return 0
}
