import CSodium
import ConclaveCrypto
import Crypto
import struct Foundation.Data

// The four ways of sealing and opening a frame that ``CryptoBench`` compares. Each
// path object owns a batch of frames of one size, a counter and whatever buffers its
// API needs; `sealBatch` then `openBatch` is one round trip for every frame of the
// batch. Everything a path needs is set up in `init`, so that what the measurement
// sees is the per-frame cost of the API and nothing else.

/// The inputs every path shares for one frame size: same key, same nonce prefix, same
/// plaintext and AAD, so that the frame-cipher and libsodium paths produce identical bytes.
struct BenchInputs {
    /// 32-byte XChaCha20-Poly1305 key (also used, as is, as the swift-crypto ChaChaPoly key).
    let key: [UInt8]
    /// The fixed first 16 bytes of every 24-byte XChaCha nonce; the last 8 are the counter.
    let noncePrefix: [UInt8]
    let plaintext: [UInt8]
    let aad: [UInt8]

    static func random(plaintextLength: Int, aadLength: Int) -> BenchInputs {
        BenchInputs(
            key: SecureRandom.bytes(count: 32),
            noncePrefix: SecureRandom.bytes(count: 16),
            plaintext: SecureRandom.bytes(count: plaintextLength),
            aad: SecureRandom.bytes(count: aadLength))
    }
}

/// One way of sealing and opening frames, driven a batch at a time.
protocol RoundTripPath: AnyObject {
    /// Seals every frame of the batch, each with a fresh counter nonce.
    func sealBatch() throws(CryptoBenchError)
    /// Verifies and opens every frame `sealBatch` produced.
    func openBatch() throws(CryptoBenchError)
    /// True when every frame opened by the last `openBatch` equals the reference plaintext.
    func openedMatchReference() -> Bool
    /// `ciphertext || tag` of frame `i` after `sealBatch` (allocates; for checks only).
    func sealedBytes(_ i: Int) -> [UInt8]
    /// Flips one ciphertext bit of sealed frame `i`, so that opening it must fail.
    func corrupt(_ i: Int)
}

extension CryptoBench.Path {
    func makeRunner(inputs: BenchInputs, batch: Int) throws(CryptoBenchError) -> any RoundTripPath {
        switch self {
        case .frameCipher: return try FrameCipherPath(inputs: inputs, batch: batch)
        case .libsodium: return LibsodiumPath(inputs: inputs, batch: batch)
        case .swiftCrypto: return try SwiftCryptoPath(inputs: inputs, batch: batch)
        case .allocating: return AllocatingPath(inputs: inputs, batch: batch)
        }
    }
}

/// A raw copy of `bytes` that lives as long as its owner (for AAD, keys and nonces
/// handed to C on every call without `withUnsafeBytes` on an array).
private final class RawBytes {
    private let buffer: UnsafeMutableRawBufferPointer
    private let count: Int

    init(_ bytes: [UInt8]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        self.buffer = buffer
        count = bytes.count
    }

    var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[0 ..< count]) }

    deinit {
        sodium_memzero(buffer.baseAddress!, buffer.count)
        buffer.deallocate()
    }
}

// MARK: - 1. frame-cipher

/// Conclave's ``XChaChaFrameCipher``: HChaCha20 subkey cached at init, in place on
/// preallocated buffers, the counter as the nonce suffix. No allocation per frame.
final class FrameCipherPath: RoundTripPath {
    private let cipher: XChaChaFrameCipher
    private let slots: FrameSlots
    private let aad: RawBytes
    private let reference: [UInt8]
    private var nextCounter: UInt64 = 0
    private var batchBase: UInt64 = 0

    init(inputs: BenchInputs, batch: Int) throws(CryptoBenchError) {
        do {
            cipher = try XChaChaFrameCipher(key: SecretKey(copying: inputs.key), noncePrefix: inputs.noncePrefix)
        } catch {
            throw .setupFailed(path: .frameCipher, reason: "\(error)")
        }
        slots = FrameSlots(count: batch, plaintext: inputs.plaintext)
        aad = RawBytes(inputs.aad)
        reference = inputs.plaintext
    }

    func sealBatch() throws(CryptoBenchError) {
        batchBase = nextCounter
        let aad = self.aad.readOnly
        for i in 0 ..< slots.count {
            do {
                try cipher.seal(inPlace: slots.body(i), tag: slots.tag(i), nonceSuffix: batchBase &+ UInt64(i), authenticating: aad)
            } catch {
                throw .roundTripFailed(path: .frameCipher, size: slots.plaintextLength, reason: "seal: \(error)")
            }
        }
        nextCounter = batchBase &+ UInt64(slots.count)
    }

    func openBatch() throws(CryptoBenchError) {
        let aad = self.aad.readOnly
        for i in 0 ..< slots.count {
            do {
                try cipher.open(inPlace: slots.body(i), tag: UnsafeRawBufferPointer(slots.tag(i)),
                                nonceSuffix: batchBase &+ UInt64(i), authenticating: aad)
            } catch {
                throw .roundTripFailed(path: .frameCipher, size: slots.plaintextLength, reason: "open: \(error)")
            }
        }
    }

    func openedMatchReference() -> Bool { slots.allBodiesEqual(reference) }
    func sealedBytes(_ i: Int) -> [UInt8] { Array(slots.sealed(i)) }
    func corrupt(_ i: Int) { slots.body(i)[0] ^= 0x01 }
}

// MARK: - 2. libsodium

/// The C baseline: `crypto_aead_xchacha20poly1305_ietf_encrypt` / `_decrypt` (combined
/// mode, in place on preallocated buffers) with a 24-byte nonce `prefix || counter`.
/// libsodium derives the HChaCha20 subkey on every call.
final class LibsodiumPath: RoundTripPath {
    private let key: RawBytes
    private let nonce: UnsafeMutableRawBufferPointer
    private let slots: FrameSlots
    private let aad: RawBytes
    private let reference: [UInt8]
    private var nextCounter: UInt64 = 0
    private var batchBase: UInt64 = 0

    init(inputs: BenchInputs, batch: Int) {
        Sodium.ensureInitialized()
        key = RawBytes(inputs.key)
        let nonce = UnsafeMutableRawBufferPointer.allocate(byteCount: 24, alignment: 16)
        nonce.initializeMemory(as: UInt8.self, repeating: 0)
        inputs.noncePrefix.withUnsafeBytes { nonce.copyMemory(from: $0) }
        self.nonce = nonce
        slots = FrameSlots(count: batch, plaintext: inputs.plaintext)
        aad = RawBytes(inputs.aad)
        reference = inputs.plaintext
    }

    deinit { nonce.deallocate() }

    @inline(__always)
    private func setCounter(_ counter: UInt64) {
        nonce.storeBytes(of: counter.bigEndian, toByteOffset: 16, as: UInt64.self)
    }

    func sealBatch() throws(CryptoBenchError) {
        batchBase = nextCounter
        let aad = self.aad.readOnly, key = self.key.readOnly.bytePointer, npub = UnsafeRawBufferPointer(nonce).bytePointer
        let length = UInt64(slots.plaintextLength)
        for i in 0 ..< slots.count {
            setCounter(batchBase &+ UInt64(i))
            let frame = slots.sealed(i).bytePointer
            guard crypto_aead_xchacha20poly1305_ietf_encrypt(
                frame, nil, frame, length, aad.bytePointer, UInt64(aad.count), nil, npub, key) == 0
            else {
                throw .roundTripFailed(path: .libsodium, size: slots.plaintextLength, reason: "encrypt returned an error")
            }
        }
        nextCounter = batchBase &+ UInt64(slots.count)
    }

    func openBatch() throws(CryptoBenchError) {
        let aad = self.aad.readOnly, key = self.key.readOnly.bytePointer, npub = UnsafeRawBufferPointer(nonce).bytePointer
        let length = UInt64(slots.plaintextLength + FrameSlots.tagLength)
        for i in 0 ..< slots.count {
            setCounter(batchBase &+ UInt64(i))
            let frame = slots.sealed(i).bytePointer
            guard crypto_aead_xchacha20poly1305_ietf_decrypt(
                frame, nil, nil, frame, length, aad.bytePointer, UInt64(aad.count), npub, key) == 0
            else {
                throw .roundTripFailed(path: .libsodium, size: slots.plaintextLength, reason: "decrypt: forged or corrupted frame")
            }
        }
    }

    func openedMatchReference() -> Bool { slots.allBodiesEqual(reference) }
    func sealedBytes(_ i: Int) -> [UInt8] { Array(slots.sealed(i)) }
    func corrupt(_ i: Int) { slots.body(i)[0] ^= 0x01 }
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
        nonceBytes = Array(inputs.noncePrefix[0 ..< 4]) + [UInt8](repeating: 0, count: 8)
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
        for i in 0 ..< boxes.count {
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
        for i in 0 ..< boxes.count {
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
              authenticatedCipherText.count >= Self.tagLength else { return nil }
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
        for i in 0 ..< sealed.count {
            guard let box = api.encrypt(message: plaintext, secretKey: key, additionalData: aad) else {
                throw .roundTripFailed(path: .allocating, size: plaintext.count, reason: "encrypt returned nil")
            }
            sealed[i] = box
        }
    }

    func openBatch() throws(CryptoBenchError) {
        for i in 0 ..< sealed.count {
            guard let message = api.decrypt(authenticatedCipherText: sealed[i].authenticatedCipherText, secretKey: key,
                                            nonce: sealed[i].nonce, additionalData: aad) else {
                throw .roundTripFailed(path: .allocating, size: plaintext.count, reason: "decrypt returned nil")
            }
            opened[i] = message
        }
    }

    func openedMatchReference() -> Bool { opened.allSatisfy { $0 == plaintext } }
    func sealedBytes(_ i: Int) -> [UInt8] { sealed[i].authenticatedCipherText }
    func corrupt(_ i: Int) { sealed[i].authenticatedCipherText[0] ^= 0x01 }
}
