import CSodium
import ConclaveCrypto

// The ways of sealing and opening a frame that ``CryptoBench`` compares: the frame
// cipher and libsodium here; the benchmark package (Benchmarks/) adds swift-crypto and an
// allocating wrapper through ``CryptoBench/Contender``, so that the product does not link
// swift-crypto. Each path object owns a batch of frames of one size, a counter and whatever buffers its
// API needs; `sealBatch` then `openBatch` is one round trip for every frame of the
// batch. Everything a path needs is set up in `init`, so that what the measurement
// sees is the per-frame cost of the API and nothing else.

/// The inputs every path shares for one frame size: same key, same nonce prefix, same
/// plaintext and AAD, so that the frame-cipher and libsodium paths produce identical bytes.
public struct BenchInputs: Sendable {
    /// 32-byte XChaCha20-Poly1305 key (also used, as is, as the swift-crypto ChaChaPoly key).
    public let key: [UInt8]
    /// The fixed first 16 bytes of every 24-byte XChaCha nonce; the last 8 are the counter.
    public let noncePrefix: [UInt8]
    public let plaintext: [UInt8]
    public let aad: [UInt8]

    public static func random(plaintextLength: Int, aadLength: Int) -> BenchInputs {
        BenchInputs(
            key: SecureRandom.bytes(count: 32),
            noncePrefix: SecureRandom.bytes(count: 16),
            plaintext: SecureRandom.bytes(count: plaintextLength),
            aad: SecureRandom.bytes(count: aadLength))
    }
}

/// One way of sealing and opening frames, driven a batch at a time.
public protocol RoundTripPath: AnyObject {
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

extension CryptoBench.Contender {
    /// Conclave's ``XChaChaFrameCipher``: subkey cached, in place, counter nonce.
    public static let frameCipher = CryptoBench.Contender(path: .frameCipher) { inputs, batch throws(CryptoBenchError) in
        try FrameCipherPath(inputs: inputs, batch: batch)
    }
    /// libsodium's XChaCha20-Poly1305 called directly: the baseline every ratio refers to.
    public static let libsodium = CryptoBench.Contender(path: .libsodium) { inputs, batch throws(CryptoBenchError) in
        LibsodiumPath(inputs: inputs, batch: batch)
    }
    /// What `conclave bench crypto` runs.
    public static let standard: [CryptoBench.Contender] = [.frameCipher, .libsodium]
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

    var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[0..<count]) }

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
        for i in 0..<slots.count {
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
        for i in 0..<slots.count {
            do {
                try cipher.open(
                    inPlace: slots.body(i), tag: UnsafeRawBufferPointer(slots.tag(i)),
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
        for i in 0..<slots.count {
            setCounter(batchBase &+ UInt64(i))
            let frame = slots.sealed(i).bytePointer
            guard
                crypto_aead_xchacha20poly1305_ietf_encrypt(
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
        for i in 0..<slots.count {
            setCounter(batchBase &+ UInt64(i))
            let frame = slots.sealed(i).bytePointer
            guard
                crypto_aead_xchacha20poly1305_ietf_decrypt(
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
