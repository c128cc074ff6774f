import ConclaveCrypto
import ConclaveProtocol
import FuzzSupport

/// Knocks (4.2) as the leader opens them: never traps on any bytes. The input's first
/// byte picks whether the rest is sealed to the fixed host key first (so that the fuzzer
/// reaches the inner parser, which a sealed box would otherwise hide), or taken as is.
let host = PrivateIdentity.generate()
let room = RoomID(bytes: [UInt8](repeating: 3, count: 16))!
let secret = [UInt8](repeating: 4, count: 32)

@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let mode = bytes.first else { return 0 }
    let rest = Array(bytes.dropFirst())
    let sealed = mode & 1 == 1 ? ((try? SealedBox.seal(rest, to: host.publicIdentity.agreementKey)) ?? rest) : rest
    _ = try? Knock.open(sealed, host: host, expectedRoom: room, relayIdentity: host.publicIdentity, inviteSecret: secret)
    return 0
}
