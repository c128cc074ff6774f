import ConclaveProtocol
import FuzzSupport

/// The SFrame header (RFC 9605 4.3) at the start of every payload: decode never traps.
/// Receivers accept any encoding (2.2), so a decoded header need not be in the shortest
/// form; its shortest encoding is no longer and decodes to the same KID and CTR.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let (header, length) = try? SFrameHeader.decode(bytes) {
        let shortest = header.encoded
        let again = try? SFrameHeader.decode(shortest)
        precondition(length <= bytes.count && shortest.count <= length, "SFrameHeader length")
        precondition(
            again?.header.keyID == header.keyID && again?.header.counter == header.counter && again?.length == shortest.count,
            "SFrameHeader did not round-trip")
    }
    return 0
}
