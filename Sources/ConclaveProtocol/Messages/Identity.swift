/// A participant's long-term public identity (section 5.2): an Ed25519 public key that
/// signs, and an X25519 public key that receives key packages. 64 bytes on the wire.
///
/// Stored inline (no allocation); only the key bytes are kept, with no claim that they are
/// valid curve points — verification belongs to the crypto layer. Public keys are not secret.
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    private var ed25519: PublicKeyBytes
    private var x25519: PublicKeyBytes

    /// Creates an identity from two 32-byte public keys; `nil` if either has another length.
    public init?(ed25519Public: some Collection<UInt8>, x25519Public: some Collection<UInt8>) {
        guard let ed = PublicKeyBytes(ed25519Public), let x = PublicKeyBytes(x25519Public) else { return nil }
        ed25519 = ed
        x25519 = x
    }

    /// Creates an identity from its 64-byte wire form; `nil` for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == MessageLimits.identityLength else { return nil }
        let array = Array(bytes)
        self.init(ed25519Public: array[0..<32], x25519Public: array[32..<64])
    }

    /// The Ed25519 public key (32 bytes).
    public var ed25519Public: [UInt8] { ed25519.bytes }
    /// The X25519 public key (32 bytes).
    public var x25519Public: [UInt8] { x25519.bytes }
    /// The 64-byte wire form.
    public var bytes: [UInt8] { ed25519.bytes + x25519.bytes }

    /// The first 8 bytes of the Ed25519 key in hex, enough to tell identities apart in logs.
    public var description: String {
        let digits = Array("0123456789abcdef")
        let prefix = ed25519.bytes.prefix(8).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] }
        return "Identity(\(String(prefix))…)"
    }

    // MARK: Wire

    init(from reader: inout ByteReader) throws(MessageDecodingError) {
        ed25519 = try PublicKeyBytes(from: &reader, field: "ed25519_public")
        x25519 = try PublicKeyBytes(from: &reader, field: "x25519_public")
    }

    func write(to writer: inout ByteWriter) {
        ed25519.write(to: &writer)
        x25519.write(to: &writer)
    }
}

/// 32 bytes held in four words, so identities are copied and compared without allocating.
struct PublicKeyBytes: Sendable, Hashable {
    private var words: (UInt64, UInt64, UInt64, UInt64)

    init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == MessageLimits.publicKeyLength else { return nil }
        var w: [UInt64] = [0, 0, 0, 0]
        for (offset, byte) in bytes.enumerated() { w[offset / 8] = w[offset / 8] << 8 | UInt64(byte) }
        words = (w[0], w[1], w[2], w[3])
    }

    init(from reader: inout ByteReader, field: String) throws(MessageDecodingError) {
        // Check the whole key is present first so a short key reports this field, unread.
        guard reader.remainingCount >= MessageLimits.publicKeyLength else { throw .truncated(field: field) }
        words = (
            try reader.readUInt64(field), try reader.readUInt64(field),
            try reader.readUInt64(field), try reader.readUInt64(field)
        )
    }

    var bytes: [UInt8] {
        var writer = ByteWriter(capacity: MessageLimits.publicKeyLength)
        write(to: &writer)
        return writer.bytes
    }

    func write(to writer: inout ByteWriter) {
        writer.writeUInt64(words.0)
        writer.writeUInt64(words.1)
        writer.writeUInt64(words.2)
        writer.writeUInt64(words.3)
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1
            && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}
