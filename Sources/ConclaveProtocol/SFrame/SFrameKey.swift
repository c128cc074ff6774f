import ConclaveCrypto

/// The key material RFC 9605 §4.4.2 derives from a base key and a KID.
public struct SFrameKeyMaterial: Sendable {
    public let suite: SFrameCipherSuite
    public let keyID: UInt64
    /// `HKDF-Extract("", base_key)`.
    public let secret: SecretKey
    /// `HKDF-Expand(secret, "SFrame 1.0 Secret key " || KID || suite, Nk)`.
    public let key: SecretKey
    /// `HKDF-Expand(secret, "SFrame 1.0 Secret salt " || KID || suite, Nn)`.
    public let salt: SecretKey

    public static func keyLabel(keyID: UInt64, suite: SFrameCipherSuite) -> [UInt8] {
        Array("SFrame 1.0 Secret key ".utf8) + keyID.bigEndianBytes + suite.id.bigEndianBytes
    }

    public static func saltLabel(keyID: UInt64, suite: SFrameCipherSuite) -> [UInt8] {
        Array("SFrame 1.0 Secret salt ".utf8) + keyID.bigEndianBytes + suite.id.bigEndianBytes
    }

    public init(suite: SFrameCipherSuite, baseKey: SecretKey, keyID: UInt64) throws {
        self.suite = suite
        self.keyID = keyID
        self.secret = HKDF.extract(suite.hash, salt: [UInt8](), ikm: baseKey)
        self.key = try HKDF.expand(suite.hash, prk: secret, info: Self.keyLabel(keyID: keyID, suite: suite), length: suite.keyLength)
        self.salt = try HKDF.expand(suite.hash, prk: secret, info: Self.saltLabel(keyID: keyID, suite: suite), length: suite.nonceLength)
    }

    /// `salt XOR CTR` with CTR left-padded to Nn bytes (RFC 9605 §4.4.3).
    public func nonce(counter: UInt64) -> [UInt8] {
        var n = salt.withUnsafeBytes { Array($0) }
        for i in 0..<8 { n[n.count - 1 - i] ^= UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
        return n
    }
}

/// One SFrame key: a (suite, KID, base key) ready to seal and open frames.
///
/// `seal` and `open` write into caller buffers and do not allocate: the AAD
/// (`header || metadata`) is assembled in a stack buffer of at most 17 + 64 bytes, and
/// for Conclave's XChaCha20-Poly1305 suite the HChaCha20 subkey is cached (see
/// ``XChaChaFrameCipher``). Immutable after init; safe to share between threads. The
/// caller owns counter uniqueness (``SenderKeyState`` in the key schedule does that).
public final class SFrameKey: Sendable {
    public let suite: SFrameCipherSuite
    public let keyID: UInt64

    private enum Backend: Sendable {
        /// Cached subkey for `salt[0..<16]`; `suffix` is `salt[16..<24]` as a big-endian integer.
        case xchacha(XChaChaFrameCipher, suffix: UInt64)
        /// AES-256-GCM with the 12-byte salt.
        case aes256gcm(key: SecretKey, salt: SecretKey)
    }

    private let backend: Backend

    public convenience init(suite: SFrameCipherSuite, baseKey: SecretKey, keyID: UInt64) throws {
        try self.init(material: SFrameKeyMaterial(suite: suite, baseKey: baseKey, keyID: keyID))
    }

    public init(material: SFrameKeyMaterial) throws {
        self.suite = material.suite
        self.keyID = material.keyID
        switch material.suite.id {
        case SFrameCipherSuite.conclaveXChaCha20Poly1305SHA256.id:
            let (prefix, suffix) = material.salt.withUnsafeBytes { s -> ([UInt8], UInt64) in
                var v: UInt64 = 0
                for i in 16..<24 { v = v << 8 | UInt64(s[i]) }
                return (Array(s[0..<16]), v)
            }
            backend = .xchacha(try XChaChaFrameCipher(key: material.key, noncePrefix: prefix), suffix: suffix)
        case SFrameCipherSuite.aes256GCMSHA512_128.id:
            guard AES256GCM.isAvailable else { throw SFrameError.unsupportedCipherSuite(material.suite.id) }
            backend = .aes256gcm(key: material.key, salt: material.salt)
        default:
            throw SFrameError.unsupportedCipherSuite(material.suite.id)
        }
    }

    /// Total frame length for a plaintext of `plaintextLength` bytes at `counter`.
    @inlinable
    public func sealedLength(counter: UInt64, plaintextLength: Int) -> Int {
        SFrameHeader(keyID: keyID, counter: counter).encodedLength + plaintextLength + suite.tagLength
    }

    /// Encrypts `plaintext` into `output` as `header || ciphertext || tag` and returns the
    /// frame length. `plaintext` may overlap `output`.
    public func seal(
        counter: UInt64, metadata: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws -> Int {
        guard plaintext.count <= SFrame.maximumPlaintextLength else {
            throw SFrameError.plaintextTooLong(length: plaintext.count, limit: SFrame.maximumPlaintextLength)
        }
        let header = SFrameHeader(keyID: keyID, counter: counter)
        let headerLength = header.encodedLength
        let total = headerLength + plaintext.count + suite.tagLength
        guard output.count >= total else { throw SFrameError.bufferTooSmall(required: total, available: output.count) }
        if plaintext.count > 0 {
            // memmove semantics: overlapping input is fine.
            output.baseAddress!.advanced(by: headerLength).copyMemory(from: plaintext.baseAddress!, byteCount: plaintext.count)
        }
        return try sealInPlace(counter: counter, metadata: metadata, frame: output, plaintextLength: plaintext.count)
    }

    /// Encrypts in place. On entry `frame[h ..< h + plaintextLength]` holds the plaintext,
    /// where `h` is the header length for `counter`; on return `frame[0 ..< result]` is the
    /// frame. The cheapest path: no copy at all.
    public func sealInPlace(
        counter: UInt64, metadata: UnsafeRawBufferPointer,
        frame: UnsafeMutableRawBufferPointer, plaintextLength: Int
    ) throws -> Int {
        guard metadata.count <= SFrame.maximumMetadataLength else {
            throw SFrameError.metadataTooLong(length: metadata.count, limit: SFrame.maximumMetadataLength)
        }
        let header = SFrameHeader(keyID: keyID, counter: counter)
        let headerLength = header.encodedLength
        let total = headerLength + plaintextLength + suite.tagLength
        guard plaintextLength >= 0, frame.count >= total else {
            throw SFrameError.bufferTooSmall(required: total, available: frame.count)
        }
        _ = try header.encode(into: frame)
        let body = UnsafeMutableRawBufferPointer(rebasing: frame[headerLength..<headerLength + plaintextLength])
        let tag = UnsafeMutableRawBufferPointer(rebasing: frame[headerLength + plaintextLength..<total])
        try withAAD(header: UnsafeRawBufferPointer(rebasing: frame[0..<headerLength]), metadata: metadata) { aad in
            switch backend {
            case let .xchacha(cipher, suffix):
                try cipher.seal(inPlace: body, tag: tag, nonceSuffix: suffix ^ counter, authenticating: aad)
            case let .aes256gcm(key, salt):
                try withAESNonce(salt: salt, counter: counter) { nonce in
                    try AES256GCM.seal(inPlace: body, tag: tag, key: key, nonce: nonce, authenticating: aad)
                }
            }
        }
        return total
    }

    /// Verifies and decrypts `frame` (header, ciphertext, tag) into `output`; returns the
    /// counter and the plaintext length. On any failure the first `min(frame.count,
    /// output.count)` bytes of `output` are zeroed, so a reused buffer holds no plaintext,
    /// neither this frame's nor an earlier one's.
    public func open(
        frame: UnsafeRawBufferPointer, metadata: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws -> (counter: UInt64, plaintextLength: Int) {
        do {
            return try openUnwiped(frame: frame, metadata: metadata, into: output)
        } catch {
            UnsafeMutableRawBufferPointer(rebasing: output[0..<min(frame.count, output.count)]).initializeMemory(as: UInt8.self, repeating: 0)
            throw error
        }
    }

    private func openUnwiped(
        frame: UnsafeRawBufferPointer, metadata: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws -> (counter: UInt64, plaintextLength: Int) {
        let (header, headerLength) = try checkFrame(frame)
        let plaintextLength = frame.count - headerLength - suite.tagLength
        guard output.count >= plaintextLength else {
            throw SFrameError.bufferTooSmall(required: plaintextLength, available: output.count)
        }
        let body = UnsafeMutableRawBufferPointer(rebasing: output[0..<plaintextLength])
        if plaintextLength > 0 {
            body.baseAddress!.copyMemory(from: frame.baseAddress!.advanced(by: headerLength), byteCount: plaintextLength)
        }
        let tag = UnsafeRawBufferPointer(rebasing: frame[(frame.count - suite.tagLength)...])
        try openBody(body, tag: tag, header: header, headerBytes: UnsafeRawBufferPointer(rebasing: frame[0..<headerLength]), metadata: metadata)
        return (header.counter, plaintextLength)
    }

    /// Verifies and decrypts in place; returns the counter and where the plaintext now
    /// lies in `frame`. On failure the ciphertext region is zeroed.
    public func openInPlace(frame: UnsafeMutableRawBufferPointer, metadata: UnsafeRawBufferPointer) throws -> (counter: UInt64, plaintext: Range<Int>) {
        let (header, headerLength) = try checkFrame(UnsafeRawBufferPointer(frame))
        let end = frame.count - suite.tagLength
        let body = UnsafeMutableRawBufferPointer(rebasing: frame[headerLength..<end])
        let tag = UnsafeRawBufferPointer(rebasing: frame[end...])
        try openBody(body, tag: tag, header: header, headerBytes: UnsafeRawBufferPointer(rebasing: frame[0..<headerLength]), metadata: metadata)
        return (header.counter, headerLength..<end)
    }

    // MARK: - Internals

    private func checkFrame(_ frame: UnsafeRawBufferPointer) throws -> (SFrameHeader, Int) {
        let (header, headerLength) = try SFrameHeader.decode(frame)
        guard header.keyID == keyID else { throw SFrameError.keyIDMismatch(expected: keyID, actual: header.keyID) }
        let minimum = headerLength + suite.tagLength
        guard frame.count >= minimum else { throw SFrameError.frameTooShort(length: frame.count, minimum: minimum) }
        guard frame.count - minimum <= SFrame.maximumPlaintextLength else {
            throw SFrameError.plaintextTooLong(length: frame.count - minimum, limit: SFrame.maximumPlaintextLength)
        }
        return (header, headerLength)
    }

    private func openBody(
        _ body: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer, header: SFrameHeader,
        headerBytes: UnsafeRawBufferPointer, metadata: UnsafeRawBufferPointer
    ) throws {
        guard metadata.count <= SFrame.maximumMetadataLength else {
            throw SFrameError.metadataTooLong(length: metadata.count, limit: SFrame.maximumMetadataLength)
        }
        do {
            try withAAD(header: headerBytes, metadata: metadata) { aad in
                switch backend {
                case let .xchacha(cipher, suffix):
                    try cipher.open(inPlace: body, tag: tag, nonceSuffix: suffix ^ header.counter, authenticating: aad)
                case let .aes256gcm(key, salt):
                    try withAESNonce(salt: salt, counter: header.counter) { nonce in
                        try AES256GCM.open(inPlace: body, tag: tag, key: key, nonce: nonce, authenticating: aad)
                    }
                }
            }
        } catch CryptoError.authenticationFailed {
            throw SFrameError.authenticationFailed
        }
    }

    /// Calls `body` with `header || metadata` in a stack buffer (≤ 81 bytes).
    private func withAAD(
        header: UnsafeRawBufferPointer, metadata: UnsafeRawBufferPointer,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let count = header.count + metadata.count
        try withUnsafeTemporaryAllocation(byteCount: count, alignment: 1) { aad in
            aad.baseAddress!.copyMemory(from: header.baseAddress!, byteCount: header.count)
            if metadata.count > 0 {
                aad.baseAddress!.advanced(by: header.count).copyMemory(from: metadata.baseAddress!, byteCount: metadata.count)
            }
            try body(UnsafeRawBufferPointer(aad))
        }
    }

    private func withAESNonce(salt: SecretKey, counter: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try withUnsafeTemporaryAllocation(byteCount: 12, alignment: 1) { nonce in
            salt.withUnsafeBytes { s in nonce.baseAddress!.copyMemory(from: s.baseAddress!, byteCount: 12) }
            for i in 0..<8 { nonce[11 - i] ^= UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
            try body(UnsafeRawBufferPointer(nonce))
        }
    }
}

extension SFrameKey: CustomStringConvertible {
    public var description: String { "SFrameKey(suite: 0x\(String(suite.id, radix: 16)), kid: \(keyID), key redacted)" }
}

extension FixedWidthInteger {
    /// Big-endian bytes of the integer.
    public var bigEndianBytes: [UInt8] {
        (0..<(Self.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) }
    }
}
