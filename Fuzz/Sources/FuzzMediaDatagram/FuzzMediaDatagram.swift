import ConclaveProtocol
import FuzzSupport

/// UDP media datagrams (6.3): parsing never traps, and the body range lies inside the input.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let raw = UnsafeRawBufferPointer(start: data, count: size)
    if let (_, body) = try? MediaDatagram.parse(raw) {
        precondition(body.lowerBound >= 0 && body.upperBound <= size, "body range outside the datagram")
    }
    return 0
}
