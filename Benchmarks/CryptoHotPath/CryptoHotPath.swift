// The per-frame crypto hot path under ordo-one's package-benchmark (STYLE.md §4, §6).
//
//   swift package --scratch-path .build-bench benchmark --target CryptoHotPath
//
// Every benchmark iteration seals and then opens 1000 frames (scalingFactor .kilo) with a
// 22-byte AAD (Conclave's SFrame metadata size). Buffers, keys and nonces are set up in
// `setup`, outside the measurement, and `setup` checks one round trip before anything
// is measured.
//
// Reading the output: throughput is always round trips (frames) per second. Rows marked
// `*` (wall clock, mallocs) are scaled to one frame by default; with `--scale` (its help
// text says the opposite, but in 1.38.1 it switches scaling off) they are per iteration,
// i.e. per 1000 round trips. Prove "no allocation" from the unscaled view, where even one
// malloc per iteration would show: `mallocCountTotal` must be 0 for "frame-cipher",
// "libsodium" and "SFrameKey" (the allocating path shows 3000, swift-crypto 16000).
//
// The four paths are the ones `ConclaveBench.CryptoBench` compares (see its doc comment);
// they are written out again here so that this file shows exactly what is measured.

import Benchmark
import CSodium
import ConclaveCrypto
import ConclaveProtocol
import Crypto
import struct Foundation.Data

let benchmarks: @Sendable () -> Void = {
    // Not `.instructions`: in benchmark 1.38.1 it makes the harness read /proc/self/stat and
    // /proc/self/io inside the measured window (it counts as an OS-stats metric), which adds
    // 16 mallocs per iteration to every benchmark, an empty loop included, and would hide the
    // 0 this suite exists to prove. (This VM also has no PMU, so it would report nothing.)
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .mallocCountTotal],
        timeUnits: .microseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(1),
        maxIterations: 10_000
    )

    for size in [64, 160, 1200] {
        Benchmark("seal+open \(size)B frame-cipher") { benchmark, path in
            for _ in benchmark.scaledIterations { try path.roundTrip() }
        } setup: {
            try FrameCipherRoundTrip(size: size)
        }
        Benchmark("seal+open \(size)B libsodium") { benchmark, path in
            for _ in benchmark.scaledIterations { try path.roundTrip() }
        } setup: {
            try LibsodiumRoundTrip(size: size)
        }
        Benchmark("seal+open \(size)B swift-crypto") { benchmark, path in
            for _ in benchmark.scaledIterations { try path.roundTrip() }
        } setup: {
            try SwiftCryptoRoundTrip(size: size)
        }
        Benchmark("seal+open \(size)B allocating") { benchmark, path in
            for _ in benchmark.scaledIterations { try path.roundTrip() }
        } setup: {
            try AllocatingRoundTrip(size: size)
        }
    }

    Benchmark("seal+open 160B SFrameKey") { benchmark, path in
        for _ in benchmark.scaledIterations { try path.roundTrip() }
    } setup: {
        try SFrameKeyRoundTrip(size: 160)
    }

    // The participant's whole per-frame path: SenderKeyState picks the epoch key, counter
    // and metadata and seals; ReceiverKeyRing parses the KID, checks the replay window,
    // opens and records the counter. mallocCountTotal must be 0 here too.
    Benchmark("seal+open 160B E2E sender/receiver") { benchmark, path in
        for _ in benchmark.scaledIterations { try path.roundTrip() }
    } setup: {
        try E2ERoundTrip(size: 160)
    }
}

// MARK: - Shared inputs

let aadLength = 22
let tagLength = 16

enum HotPathError: Error, CustomStringConvertible {
    case libsodiumFailed(String)
    case roundTripMismatch(String)

    var description: String {
        switch self {
        case let .libsodiumFailed(what): "libsodium call failed: \(what)"
        case let .roundTripMismatch(path): "\(path): opened frame differs from the plaintext"
        }
    }
}

/// A heap buffer that outlives every call that borrows it.
final class Buffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = .allocate(byteCount: count, alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    convenience init(copying source: [UInt8], capacity: Int? = nil) {
        self.init(count: capacity ?? source.count)
        source.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    deinit { bytes.deallocate() }

    var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }
    var u8: UnsafeMutablePointer<UInt8> { bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) }
    func prefix(_ n: Int) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: bytes[0 ..< n]) }
}

// MARK: - 1. frame-cipher: XChaChaFrameCipher, cached subkey, in place, counter nonce

final class FrameCipherRoundTrip {
    let cipher: XChaChaFrameCipher
    let frame: Buffer  // body || tag
    let aad: Buffer
    let plaintext: [UInt8]
    let size: Int
    var counter: UInt64 = 0

    init(size: Int) throws {
        self.size = size
        plaintext = SecureRandom.bytes(count: size)
        cipher = try XChaChaFrameCipher(key: .random(), noncePrefix: SecureRandom.bytes(count: 16))
        frame = Buffer(copying: plaintext, capacity: size + tagLength)
        aad = Buffer(copying: SecureRandom.bytes(count: aadLength))
        try roundTrip()
        guard Array(frame.prefix(size)) == plaintext else { throw HotPathError.roundTripMismatch("frame-cipher") }
    }

    @inline(__always)
    func roundTrip() throws {
        let body = frame.prefix(size)
        let tag = UnsafeMutableRawBufferPointer(rebasing: frame.bytes[size ..< size + tagLength])
        try cipher.seal(inPlace: body, tag: tag, nonceSuffix: counter, authenticating: aad.readOnly)
        try cipher.open(inPlace: body, tag: UnsafeRawBufferPointer(tag), nonceSuffix: counter, authenticating: aad.readOnly)
        counter &+= 1
    }
}

// MARK: - 2. libsodium: crypto_aead_xchacha20poly1305_ietf_*, in place, counter nonce

final class LibsodiumRoundTrip {
    let key: Buffer
    let nonce: Buffer  // 16 random bytes || 8-byte big-endian counter
    let frame: Buffer  // ciphertext || tag (combined mode)
    let aad: Buffer
    let size: Int
    var counter: UInt64 = 0

    init(size: Int) throws {
        Sodium.ensureInitialized()
        self.size = size
        let plaintext = SecureRandom.bytes(count: size)
        key = Buffer(copying: SecureRandom.bytes(count: 32))
        nonce = Buffer(copying: SecureRandom.bytes(count: 24))
        frame = Buffer(copying: plaintext, capacity: size + tagLength)
        aad = Buffer(copying: SecureRandom.bytes(count: aadLength))
        try roundTrip()
        guard Array(frame.prefix(size)) == plaintext else { throw HotPathError.roundTripMismatch("libsodium") }
    }

    @inline(__always)
    func roundTrip() throws {
        nonce.bytes.storeBytes(of: counter.bigEndian, toByteOffset: 16, as: UInt64.self)
        guard crypto_aead_xchacha20poly1305_ietf_encrypt(
            frame.u8, nil, frame.u8, UInt64(size), aad.u8, UInt64(aadLength), nil, nonce.u8, key.u8) == 0
        else { throw HotPathError.libsodiumFailed("encrypt") }
        guard crypto_aead_xchacha20poly1305_ietf_decrypt(
            frame.u8, nil, nil, frame.u8, UInt64(size + tagLength), aad.u8, UInt64(aadLength), nonce.u8, key.u8) == 0
        else { throw HotPathError.libsodiumFailed("decrypt") }
        counter &+= 1
    }
}

// MARK: - 3. swift-crypto: ChaChaPoly (IETF, 12-byte counter nonce), public API

final class SwiftCryptoRoundTrip {
    let key = SymmetricKey(size: .bits256)
    let plaintext: [UInt8]
    let aad: [UInt8]
    var nonceBytes: [UInt8] = SecureRandom.bytes(count: 4) + [UInt8](repeating: 0, count: 8)
    var counter: UInt64 = 0

    init(size: Int) throws {
        plaintext = SecureRandom.bytes(count: size)
        aad = SecureRandom.bytes(count: aadLength)
        guard try roundTripReturningPlaintext().elementsEqual(plaintext) else {
            throw HotPathError.roundTripMismatch("swift-crypto")
        }
    }

    @inline(__always)
    func roundTripReturningPlaintext() throws -> Data {
        nonceBytes.withUnsafeMutableBytes { $0.storeBytes(of: counter.bigEndian, toByteOffset: 4, as: UInt64.self) }
        counter &+= 1
        let box = try ChaChaPoly.seal(plaintext, using: key, nonce: ChaChaPoly.Nonce(data: nonceBytes), authenticating: aad)
        return try ChaChaPoly.open(box, using: key, authenticating: aad)
    }

    @inline(__always)
    func roundTrip() throws { blackHole(try roundTripReturningPlaintext()) }
}

// MARK: - 4. allocating: swift-sodium-style [UInt8] API, random nonce per seal

final class AllocatingRoundTrip {
    let key: [UInt8] = SecureRandom.bytes(count: 32)
    let plaintext: [UInt8]
    let aad: [UInt8]

    init(size: Int) throws {
        Sodium.ensureInitialized()
        plaintext = SecureRandom.bytes(count: size)
        aad = SecureRandom.bytes(count: aadLength)
        guard try roundTripReturningPlaintext() == plaintext else { throw HotPathError.roundTripMismatch("allocating") }
    }

    /// As `Aead.xchacha20poly1305ietf.encrypt(message:secretKey:additionalData:)`: a new
    /// random nonce array and a new ciphertext array per call.
    @inline(never)
    func encrypt(message: [UInt8], secretKey: [UInt8], additionalData: [UInt8]?) -> (authenticatedCipherText: [UInt8], nonce: [UInt8])? {
        var nonce = [UInt8](repeating: 0, count: 24)
        randombytes_buf(&nonce, 24)
        var out = [UInt8](repeating: 0, count: message.count + tagLength)
        var length: UInt64 = 0
        guard crypto_aead_xchacha20poly1305_ietf_encrypt(
            &out, &length, message, UInt64(message.count),
            additionalData, UInt64(additionalData?.count ?? 0), nil, nonce, secretKey) == 0 else { return nil }
        return (out, nonce)
    }

    /// As `Aead.xchacha20poly1305ietf.decrypt(authenticatedCipherText:secretKey:nonce:additionalData:)`.
    @inline(never)
    func decrypt(authenticatedCipherText: [UInt8], secretKey: [UInt8], nonce: [UInt8], additionalData: [UInt8]?) -> [UInt8]? {
        guard authenticatedCipherText.count >= tagLength else { return nil }
        var message = [UInt8](repeating: 0, count: authenticatedCipherText.count - tagLength)
        var length: UInt64 = 0
        guard crypto_aead_xchacha20poly1305_ietf_decrypt(
            &message, &length, nil, authenticatedCipherText, UInt64(authenticatedCipherText.count),
            additionalData, UInt64(additionalData?.count ?? 0), nonce, secretKey) == 0 else { return nil }
        return message
    }

    @inline(__always)
    func roundTripReturningPlaintext() throws -> [UInt8] {
        guard let sealed = encrypt(message: plaintext, secretKey: key, additionalData: aad) else {
            throw HotPathError.libsodiumFailed("encrypt")
        }
        guard let opened = decrypt(authenticatedCipherText: sealed.authenticatedCipherText, secretKey: key,
                                   nonce: sealed.nonce, additionalData: aad) else {
            throw HotPathError.libsodiumFailed("decrypt")
        }
        return opened
    }

    @inline(__always)
    func roundTrip() throws { blackHole(try roundTripReturningPlaintext()) }
}

// MARK: - SFrameKey: header encoding, AAD assembly, nonce, seal/open into caller buffers

final class SFrameKeyRoundTrip {
    let key: SFrameKey
    let plaintext: Buffer
    let frame: Buffer
    let output: Buffer
    let metadata: Buffer
    let size: Int
    /// A realistic counter: an hour of 20 ms audio frames is ~180 000, a 3-byte CTR.
    var counter: UInt64 = 0x1_0000

    init(size: Int) throws {
        self.size = size
        key = try SFrameKey(suite: .conclaveXChaCha20Poly1305SHA256, baseKey: .random(), keyID: 7)
        plaintext = Buffer(copying: SecureRandom.bytes(count: size))
        frame = Buffer(count: SFrameHeader.maximumEncodedLength + size + tagLength)
        output = Buffer(count: size)
        metadata = Buffer(copying: SecureRandom.bytes(count: aadLength))
        try roundTrip()
        guard output.bytes.elementsEqual(plaintext.bytes) else { throw HotPathError.roundTripMismatch("SFrameKey") }
    }

    @inline(__always)
    func roundTrip() throws {
        let length = try key.seal(counter: counter, metadata: metadata.readOnly, plaintext: plaintext.readOnly, into: frame.bytes)
        let opened = try key.open(frame: UnsafeRawBufferPointer(frame.prefix(length)), metadata: metadata.readOnly, into: output.bytes)
        counter &+= 1
        blackHole(opened)
    }
}

// MARK: - The end-to-end per-frame path of a participant

final class E2ERoundTrip {
    var sender: SenderKeyState
    var receiver: ReceiverKeyRing
    let header: FrameHeader
    let plaintext: Buffer
    let frame: Buffer
    let output: Buffer
    /// Past the sender's 250 ms switch, so the epoch is active.
    let now: UInt64 = 1_000

    init(size: Int) throws {
        let room = RoomID(bytes: SecureRandom.bytes(count: 16))!
        let a = PrivateIdentity.generate(), b = PrivateIdentity.generate()
        let members = [RosterMember(index: 1, identity: a.publicIdentity), RosterMember(index: 2, identity: b.publicIdentity)]
        let secret = SecretKey.random()
        sender = SenderKeyState(roomID: room, me: 1, identity: a)
        sender.install(epoch: 1, secret: secret, now: 0)
        sender.setPeers(members)
        receiver = ReceiverKeyRing(roomID: room, me: 2, identity: b)
        _ = receiver.install(epoch: 1, secret: secret, members: members, now: 0)
        header = try FrameHeader(kind: .audio, sender: 1, recipient: .everyone)
        plaintext = Buffer(copying: SecureRandom.bytes(count: size))
        frame = Buffer(count: SFrameHeader.maximumEncodedLength + size + tagLength)
        output = Buffer(count: SFrameHeader.maximumEncodedLength + size + tagLength)
        try roundTrip()
        guard output.bytes.prefix(size).elementsEqual(plaintext.bytes) else { throw HotPathError.roundTripMismatch("E2E") }
    }

    @inline(__always)
    func roundTrip() throws {
        let length = try sender.seal(kind: .audio, recipient: .everyone, plaintext: plaintext.readOnly, into: frame.bytes, now: now)
        let outcome = receiver.open(header: header, payload: UnsafeRawBufferPointer(frame.prefix(length)), into: output.bytes, now: now)
        guard case .opened = outcome else { throw HotPathError.roundTripMismatch("E2E: \(outcome)") }
    }
}
