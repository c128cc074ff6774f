// The comparison paths of the crypto benchmarks: swift-crypto's `ChaChaPoly` as a Swift
// developer would reach for it, and an allocating wrapper in the style of swift-sodium.
// They live in the benchmark package so that the product never links swift-crypto (a
// second BoringSSL) or carries code it does not run. `CryptoBench` runs them as
// ``CryptoBench/Contender``s next to the frame cipher and libsodium.

import CSodium
import ConclaveBench
import ConclaveCrypto
import Crypto
import struct Foundation.Data

extension CryptoBench.Path {
    /// swift-crypto's `ChaChaPoly` (IETF, 12-byte counter nonce) through its public
    /// `seal(_:using:nonce:authenticating:)` / `open(_:using:authenticating:)`, with
    /// `[UInt8]` plaintext and AAD. Allocates on every call: 16 mallocs per round trip
    /// with swift-crypto 4.5.2 (BoringSSL AEAD context, ciphertext and tag, the
    /// combined sealed box, the plaintext `Data`, ...).
    public static let swiftCrypto = CryptoBench.Path("swift-crypto")
    /// A swift-sodium-style wrapper: `[UInt8]` in, new `[UInt8]` out, a random 24-byte
    /// nonce drawn into a new array per seal (libsodium underneath). Three mallocs per
    /// round trip: nonce, ciphertext, plaintext.
    public static let allocating = CryptoBench.Path("allocating")
}

extension CryptoBench.Contender {
    public static let swiftCrypto = CryptoBench.Contender(path: .swiftCrypto) { inputs, batch throws(CryptoBenchError) in
        try SwiftCryptoPath(inputs: inputs, batch: batch)
    }
    public static let allocating = CryptoBench.Contender(path: .allocating) { inputs, batch throws(CryptoBenchError) in
        AllocatingPath(inputs: inputs, batch: batch)
    }
    /// The product's two paths and the two comparisons, in the order of the reports.
    public static let all: [CryptoBench.Contender] = [.frameCipher, .libsodium, .swiftCrypto, .allocating]
}

// MARK: - 3. swift-crypto

/// swift-crypto's `ChaChaPoly` (IETF ChaCha20-Poly1305, 12-byte nonce `prefix[0..<4] ||
/// counter`) used the way its documentation shows: `[UInt8]` plaintext and AAD in,
/// `ChaChaPoly.seal(_:using:nonce:authenticating:)` returning a `SealedBox`, and
/// `ChaChaPoly.open(_:using:authenticating:)` returning `Data`.
///
/// Not the same construction as the other three (no HChaCha20, 12-byte nonce); it is the
/// "what a Swift developer reaches for" reference. Its per-call cost is API overhead:
/// a fresh `Data` for every sealed box and every plaintext, plus BoringSSL AEAD context setup.
final class SwiftCryptoPath: RoundTripPath {
    private let key: SymmetricKey
    private let plaintext: [UInt8]
    private let aad: [UInt8]
    private var nonceBytes: [UInt8]
    private var boxes: [ChaChaPoly.SealedBox]
    private var opened: [Data]
    private var nextCounter: UInt64 = 0

    init(inputs: BenchInputs, batch: Int) throws(CryptoBenchError) {
        key = SymmetricKey(data: inputs.key)
        plaintext = inputs.plaintext
        aad = inputs.aad
        nonceBytes = Array(inputs.noncePrefix[0..<4]) + [UInt8](repeating: 0, count: 8)
        do {
            let placeholder = try ChaChaPoly.seal(plaintext, using: key, nonce: ChaChaPoly.Nonce(data: nonceBytes), authenticating: aad)
            boxes = Array(repeating: placeholder, count: batch)
        } catch {
            throw .setupFailed(path: .swiftCrypto, reason: "\(error)")
        }
        opened = Array(repeating: Data(), count: batch)
        nextCounter = 1  // the placeholder used counter 0
    }

    func sealBatch() throws(CryptoBenchError) {
        for i in 0..<boxes.count {
            let counter = nextCounter
            nextCounter &+= 1
            nonceBytes.withUnsafeMutableBytes { $0.storeBytes(of: counter.bigEndian, toByteOffset: 4, as: UInt64.self) }
            do {
                boxes[i] = try ChaChaPoly.seal(plaintext, using: key, nonce: ChaChaPoly.Nonce(data: nonceBytes), authenticating: aad)
            } catch {
                throw .roundTripFailed(path: .swiftCrypto, size: plaintext.count, reason: "seal: \(error)")
            }
        }
    }

    func openBatch() throws(CryptoBenchError) {
        for i in 0..<boxes.count {
            do {
                opened[i] = try ChaChaPoly.open(boxes[i], using: key, authenticating: aad)
            } catch {
                throw .roundTripFailed(path: .swiftCrypto, size: plaintext.count, reason: "open: \(error)")
            }
        }
    }

    func openedMatchReference() -> Bool { opened.allSatisfy { $0.elementsEqual(plaintext) } }
    func sealedBytes(_ i: Int) -> [UInt8] { Array(boxes[i].ciphertext) + Array(boxes[i].tag) }

    func corrupt(_ i: Int) {
        var ciphertext = Array(boxes[i].ciphertext)
        ciphertext[0] ^= 0x01
        boxes[i] = try! ChaChaPoly.SealedBox(nonce: boxes[i].nonce, ciphertext: ciphertext, tag: boxes[i].tag)
    }
}

// MARK: - 4. allocating

/// A convenience wrapper in the style of jedisct1/swift-sodium's
/// `Aead.xchacha20poly1305ietf`: `[UInt8]` in, a new `[UInt8]` out on every call, a random
/// 24-byte nonce drawn into a new array on every seal, `nil` on failure.
///
/// STYLE.md §3 names this as the hot path not to copy; it is here to show what it costs.
struct AllocatingXChaCha20Poly1305 {
    static let tagLength = 16
    static let nonceLength = 24

    /// Encrypts `message`; returns `ciphertext || tag` and the random nonce, or nil.
    func encrypt(message: [UInt8], secretKey: [UInt8], additionalData: [UInt8]?) -> (authenticatedCipherText: [UInt8], nonce: [UInt8])? {
        guard secretKey.count == 32 else { return nil }
        var nonce = [UInt8](repeating: 0, count: Self.nonceLength)
        randombytes_buf(&nonce, Self.nonceLength)
        var authenticatedCipherText = [UInt8](repeating: 0, count: message.count + Self.tagLength)
        var length: UInt64 = 0
        let rc = crypto_aead_xchacha20poly1305_ietf_encrypt(
            &authenticatedCipherText, &length, message, UInt64(message.count),
            additionalData, UInt64(additionalData?.count ?? 0), nil, nonce, secretKey)
        guard rc == 0 else { return nil }
        return (authenticatedCipherText, nonce)
    }

    /// Verifies and decrypts; returns a new array with the plaintext, or nil.
    func decrypt(authenticatedCipherText: [UInt8], secretKey: [UInt8], nonce: [UInt8], additionalData: [UInt8]?) -> [UInt8]? {
        guard secretKey.count == 32, nonce.count == Self.nonceLength,
            authenticatedCipherText.count >= Self.tagLength
        else { return nil }
        var message = [UInt8](repeating: 0, count: authenticatedCipherText.count - Self.tagLength)
        var length: UInt64 = 0
        let rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
            &message, &length, nil, authenticatedCipherText, UInt64(authenticatedCipherText.count),
            additionalData, UInt64(additionalData?.count ?? 0), nonce, secretKey)
        guard rc == 0 else { return nil }
        return message
    }
}

/// Drives ``AllocatingXChaCha20Poly1305``: keeps every sealed `(ciphertext, nonce)` and
/// every opened plaintext array of the batch, as a caller would hold them.
final class AllocatingPath: RoundTripPath {
    private let api = AllocatingXChaCha20Poly1305()
    private let key: [UInt8]
    private let plaintext: [UInt8]
    private let aad: [UInt8]
    private var sealed: [(authenticatedCipherText: [UInt8], nonce: [UInt8])]
    private var opened: [[UInt8]]

    init(inputs: BenchInputs, batch: Int) {
        Sodium.ensureInitialized()
        key = inputs.key
        plaintext = inputs.plaintext
        aad = inputs.aad
        sealed = Array(repeating: ([], []), count: batch)
        opened = Array(repeating: [], count: batch)
    }

    func sealBatch() throws(CryptoBenchError) {
        for i in 0..<sealed.count {
            guard let box = api.encrypt(message: plaintext, secretKey: key, additionalData: aad) else {
                throw .roundTripFailed(path: .allocating, size: plaintext.count, reason: "encrypt returned nil")
            }
            sealed[i] = box
        }
    }

    func openBatch() throws(CryptoBenchError) {
        for i in 0..<sealed.count {
            guard
                let message = api.decrypt(
                    authenticatedCipherText: sealed[i].authenticatedCipherText, secretKey: key,
                    nonce: sealed[i].nonce, additionalData: aad)
            else {
                throw .roundTripFailed(path: .allocating, size: plaintext.count, reason: "decrypt returned nil")
            }
            opened[i] = message
        }
    }

    func openedMatchReference() -> Bool { opened.allSatisfy { $0 == plaintext } }
    func sealedBytes(_ i: Int) -> [UInt8] { sealed[i].authenticatedCipherText }
    func corrupt(_ i: Int) { sealed[i].authenticatedCipherText[0] ^= 0x01 }
}
