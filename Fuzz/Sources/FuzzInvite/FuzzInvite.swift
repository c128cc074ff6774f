import ConclaveProtocol
import FuzzSupport

/// Invite URLs (4.1): parsing any text never traps; what parses prints back as an invite
/// that parses to the same invite.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let invite = try? Invite(parsing: text) {
        let again = try? Invite(parsing: invite.text)
        precondition(again?.text == invite.text, "Invite did not round-trip")
    }
    return 0
}
