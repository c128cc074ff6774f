import ConclaveCrypto

/// An SFrame cipher suite (RFC 9605 §4.5 and the IANA registry), plus Conclave's
/// private-use suite.
public struct SFrameCipherSuite: Sendable, Hashable, CustomStringConvertible {
    /// The 16-bit identifier used in key derivation labels.
    public let id: UInt16
    public let name: String
    /// Key length Nk, nonce length Nn, tag length Nt (bytes).
    public let keyLength: Int
    public let nonceLength: Int
    public let tagLength: Int
    /// The HKDF hash.
    public let hash: HKDF.Hash

    /// Conclave's suite: XChaCha20-Poly1305 with HKDF-SHA256, Nk 32, Nn 24, Nt 16, in
    /// RFC 9605's private-use range 0xF000–0xFFFF.
    public static let conclaveXChaCha20Poly1305SHA256 = SFrameCipherSuite(
        id: 0xF0C1, name: "CONCLAVE_XCHACHA20_POLY1305_SHA256_128", keyLength: 32, nonceLength: 24, tagLength: 16, hash: .sha256)

    // Registered suites. For the AES-CTR-HMAC suites Nk = 48: a 16-byte AES key and a
    // 32-byte HMAC key (RFC 9605 §4.5.1). Only 0x0005 can seal/open here (libsodium has AES-256-GCM but
    // neither AES-128-GCM nor AES-CTR); the others are listed so that key derivation can
    // be checked against RFC 9605's vectors.
    public static let aes128CTRHMACSHA256_80 = SFrameCipherSuite(
        id: 0x0001, name: "AES_128_CTR_HMAC_SHA256_80", keyLength: 48, nonceLength: 12, tagLength: 10, hash: .sha256)
    public static let aes128CTRHMACSHA256_64 = SFrameCipherSuite(
        id: 0x0002, name: "AES_128_CTR_HMAC_SHA256_64", keyLength: 48, nonceLength: 12, tagLength: 8, hash: .sha256)
    public static let aes128CTRHMACSHA256_32 = SFrameCipherSuite(
        id: 0x0003, name: "AES_128_CTR_HMAC_SHA256_32", keyLength: 48, nonceLength: 12, tagLength: 4, hash: .sha256)
    public static let aes128GCMSHA256_128 = SFrameCipherSuite(
        id: 0x0004, name: "AES_128_GCM_SHA256_128", keyLength: 16, nonceLength: 12, tagLength: 16, hash: .sha256)
    public static let aes256GCMSHA512_128 = SFrameCipherSuite(
        id: 0x0005, name: "AES_256_GCM_SHA512_128", keyLength: 32, nonceLength: 12, tagLength: 16, hash: .sha512)

    public static let all: [SFrameCipherSuite] = [
        .aes128CTRHMACSHA256_80, .aes128CTRHMACSHA256_64, .aes128CTRHMACSHA256_32,
        .aes128GCMSHA256_128, .aes256GCMSHA512_128, .conclaveXChaCha20Poly1305SHA256,
    ]

    public init(id: UInt16, name: String, keyLength: Int, nonceLength: Int, tagLength: Int, hash: HKDF.Hash) {
        self.id = id; self.name = name; self.keyLength = keyLength
        self.nonceLength = nonceLength; self.tagLength = tagLength; self.hash = hash
    }

    /// The suite with this identifier, or throws ``SFrameError/unsupportedCipherSuite(_:)``.
    public static func withID(_ id: UInt16) throws -> SFrameCipherSuite {
        guard let suite = all.first(where: { $0.id == id }) else { throw SFrameError.unsupportedCipherSuite(id) }
        return suite
    }

    /// True when this build can encrypt and decrypt with the suite.
    public var canSealAndOpen: Bool {
        switch id {
        case Self.conclaveXChaCha20Poly1305SHA256.id: return true
        case Self.aes256GCMSHA512_128.id: return AES256GCM.isAvailable
        default: return false
        }
    }

    public var description: String { "\(name) (0x\(String(id, radix: 16, uppercase: true)))" }
}
