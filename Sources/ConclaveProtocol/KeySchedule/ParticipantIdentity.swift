import ConclaveCrypto

/// A participant's long-term public identity: an Ed25519 signing key and an X25519 key
/// for sealed boxes. 64 bytes on the wire (`ed25519 || x25519`).
public struct PublicIdentity: Sendable, Hashable {
    public let signingKey: Ed25519.PublicKey
    public let agreementKey: X25519.PublicKey

    public static let encodedLength = 64

    public init(signingKey: Ed25519.PublicKey, agreementKey: X25519.PublicKey) {
        self.signingKey = signingKey
        self.agreementKey = agreementKey
    }

    public init<Bytes: Collection>(encoded: Bytes) throws where Bytes.Element == UInt8 {
        guard encoded.count == Self.encodedLength else { throw KeyScheduleError.malformed("identity (\(encoded.count) bytes, expected 64)") }
        let a = Array(encoded)
        self.signingKey = try Ed25519.PublicKey(rawRepresentation: a[0..<32])
        self.agreementKey = try X25519.PublicKey(rawRepresentation: a[32..<64])
    }

    public var encoded: [UInt8] { signingKey.rawRepresentation + agreementKey.rawRepresentation }

    /// `SHA-256("conclave/v1 fingerprint" || ed25519 || x25519)`, 32 bytes.
    public var fingerprint: Fingerprint {
        Fingerprint(bytes: SHA2.sha256(Array(Labels.fingerprint.utf8) + encoded))
    }
}

/// A 32-byte identity fingerprint. Shown to people as the first 16 bytes in eight groups
/// of four hex digits; carried in invites in full (base64url).
public struct Fingerprint: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// e.g. `3f2a 9c01 77de 0b4e 5a11 c3d2 8e90 1f6b`
    public var displayString: String {
        let h = Hex.encode(bytes.prefix(16))
        var groups: [Substring] = []
        var i = h.startIndex
        while i < h.endIndex {
            let j = h.index(i, offsetBy: 4)
            groups.append(h[i..<j]); i = j
        }
        return groups.joined(separator: " ")
    }

    public var description: String { displayString }
}

/// A participant's long-term private identity.
public struct PrivateIdentity: Sendable {
    public let signingKey: Ed25519.PrivateKey
    public let agreementKey: X25519.PrivateKey

    public init(signingKey: Ed25519.PrivateKey, agreementKey: X25519.PrivateKey) {
        self.signingKey = signingKey
        self.agreementKey = agreementKey
    }

    /// A fresh random identity.
    public static func generate() -> PrivateIdentity {
        PrivateIdentity(signingKey: Ed25519.PrivateKey(), agreementKey: X25519.PrivateKey())
    }

    public var publicIdentity: PublicIdentity {
        PublicIdentity(signingKey: signingKey.publicKey, agreementKey: agreementKey.publicKey)
    }
}

extension PrivateIdentity: CustomStringConvertible {
    public var description: String { "PrivateIdentity(redacted, fingerprint \(publicIdentity.fingerprint))" }
}

extension PublicIdentity {
    /// From the wire form of section 5.2.
    public init(_ identity: Identity) throws {
        try self.init(encoded: identity.bytes)
    }

    /// The wire form of section 5.2.
    public var wireIdentity: Identity {
        Identity(bytes: encoded)!
    }
}
