import CSodium

/// libsodium's `crypto_secretstream_xchacha20poly1305`: a sequence of messages encrypted
/// under one key, each authenticated together with its position in the sequence, so that
/// dropping, repeating, reordering or truncating messages is detected. The last message
/// carries the ``Tag/final`` tag; a stream that ends without it was truncated.
///
/// ```swift
/// let key = SecretKey.random(count: SecretStream.keyLength)
/// let push = try SecretStream.Push(key: key)           // push.header goes first on disk
/// let c1 = try push.seal(chunk1, tag: .message)
/// let c2 = try push.seal(chunk2, tag: .final)
/// let pull = try SecretStream.Pull(key: key, header: push.header)
/// let (m1, t1) = try pull.open(c1)                     // .message
/// ```
///
/// Each endpoint is a class whose state lives in its own heap allocation, wiped on deinit.
/// They are not `Sendable`: one task drives a stream.
public enum SecretStream {
    /// Key bytes (32).
    public static let keyLength = Int(crypto_secretstream_xchacha20poly1305_keybytes())
    /// Header bytes written before the first message (24).
    public static let headerLength = Int(crypto_secretstream_xchacha20poly1305_headerbytes())
    /// Bytes each message adds: a one-byte encrypted tag and a 16-byte MAC (17).
    public static let overhead = Int(crypto_secretstream_xchacha20poly1305_abytes())
    /// The longest message this wrapper seals or opens (16 MiB): bounds what a file can
    /// make a reader allocate.
    public static let maximumMessageLength = 16 << 20

    /// A message's tag, authenticated with it.
    public enum Tag: UInt8, Sendable, Hashable {
        case message = 0
        case push = 1
        case rekey = 2
        /// The last message of the stream.
        case final = 3
    }

    final class State {
        let pointer: UnsafeMutableRawPointer
        let size = crypto_secretstream_xchacha20poly1305_statebytes()
        init() {
            pointer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        }
        deinit {
            sodium_memzero(pointer, size)
            pointer.deallocate()
        }
        var typed: UnsafeMutablePointer<crypto_secretstream_xchacha20poly1305_state> {
            pointer.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self)
        }
    }

    /// The writing end.
    public final class Push {
        private let state = State()
        /// Goes before the first message; the reader needs it.
        public let header: [UInt8]
        private var finished = false

        public init(key: SecretKey) throws {
            Sodium.ensureInitialized()
            guard key.count == SecretStream.keyLength else {
                throw CryptoError.invalidKeyLength(expected: SecretStream.keyLength, actual: key.count)
            }
            var header = [UInt8](repeating: 0, count: SecretStream.headerLength)
            let state = self.state
            let rc = key.withUnsafeBytes { k in
                header.withUnsafeMutableBufferPointer { h in
                    crypto_secretstream_xchacha20poly1305_init_push(state.typed, h.baseAddress!, k.u8nn)
                }
            }
            guard rc == 0 else { throw CryptoError.resourceFailure("secretstream init_push") }
            self.header = header
        }

        /// Encrypts one message, authenticating `additionalData` with it (not stored).
        /// After a ``Tag/final`` message the stream takes nothing more.
        public func seal<Plaintext: ContiguousBytes>(_ plaintext: Plaintext, additionalData: [UInt8] = [], tag: Tag = .message) throws -> [UInt8] {
            guard !finished else { throw CryptoError.unsupported("the stream was already finished") }
            let state = self.state
            let out = try plaintext.withUnsafeBytes { m -> [UInt8] in
                guard m.count <= SecretStream.maximumMessageLength else {
                    throw CryptoError.inputTooLong(length: m.count, limit: SecretStream.maximumMessageLength)
                }
                var out = [UInt8](repeating: 0, count: m.count + SecretStream.overhead)
                var written: UInt64 = 0
                let rc = out.withUnsafeMutableBufferPointer { c in
                    additionalData.withUnsafeBytes { ad in
                        crypto_secretstream_xchacha20poly1305_push(
                            state.typed, c.baseAddress!, &written, m.u8, UInt64(m.count),
                            ad.u8, UInt64(ad.count), tag.rawValue)
                    }
                }
                guard rc == 0, written == UInt64(out.count) else { throw CryptoError.resourceFailure("secretstream push") }
                return out
            }
            if tag == .final { finished = true }
            return out
        }
    }

    /// The reading end.
    public final class Pull {
        private let state = State()
        /// A ``Tag/final`` message has been opened: the stream is complete.
        public private(set) var isFinished = false

        /// Throws ``CryptoError/authenticationFailed`` when the header is not 24 bytes or
        /// the key is wrong length.
        public init(key: SecretKey, header: [UInt8]) throws {
            Sodium.ensureInitialized()
            guard key.count == SecretStream.keyLength else {
                throw CryptoError.invalidKeyLength(expected: SecretStream.keyLength, actual: key.count)
            }
            guard header.count == SecretStream.headerLength else { throw CryptoError.authenticationFailed }
            let state = self.state
            let rc = key.withUnsafeBytes { k in
                header.withUnsafeBufferPointer { h in
                    crypto_secretstream_xchacha20poly1305_init_pull(state.typed, h.baseAddress!, k.u8nn)
                }
            }
            guard rc == 0 else { throw CryptoError.authenticationFailed }
        }

        /// Decrypts the next message. Throws ``CryptoError/authenticationFailed`` for a
        /// message that was altered, is out of order, belongs to another stream or key, or
        /// follows the final one; nothing is returned then. A failed open leaves the state
        /// as it was (libsodium updates it only after the MAC verified), so the same message
        /// may be tried again with other additional data.
        public func open<Ciphertext: ContiguousBytes>(_ ciphertext: Ciphertext, additionalData: [UInt8] = []) throws -> (plaintext: SecretBytes, tag: Tag) {
            guard !isFinished else { throw CryptoError.authenticationFailed }
            let state = self.state
            var rawTag: UInt8 = 0
            let plain = try ciphertext.withUnsafeBytes { c -> SecretBytes in
                guard c.count >= SecretStream.overhead else { throw CryptoError.authenticationFailed }
                guard c.count - SecretStream.overhead <= SecretStream.maximumMessageLength else {
                    throw CryptoError.inputTooLong(length: c.count - SecretStream.overhead, limit: SecretStream.maximumMessageLength)
                }
                var rc: Int32 = 0
                var written: UInt64 = 0
                let plain = SecretBytes(count: c.count - SecretStream.overhead) { m in
                    additionalData.withUnsafeBytes { ad in
                        rc = crypto_secretstream_xchacha20poly1305_pull(
                            state.typed, m.u8nn, &written, &rawTag, c.u8nn, UInt64(c.count),
                            ad.u8, UInt64(ad.count))
                    }
                }
                guard rc == 0, written == UInt64(plain.count) else { throw CryptoError.authenticationFailed }
                return plain
            }
            guard let tag = Tag(rawValue: rawTag) else { throw CryptoError.authenticationFailed }
            if tag == .final { isFinished = true }
            return (plain, tag)
        }
    }
}
