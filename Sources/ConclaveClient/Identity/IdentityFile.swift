import ConclaveCrypto
import ConclaveProtocol
#if canImport(Glibc)
import Glibc
#endif

/// A long-term identity on disk: an Ed25519 seed and an X25519 secret, in a small text file
/// readable only by its owner (mode 0600).
///
/// ```
/// conclave-identity-v1
/// ed25519-seed <64 hex digits>
/// x25519-secret <64 hex digits>
/// ```
public enum IdentityFile {
    public static let header = "conclave-identity-v1"
    public static let maximumFileLength = 1024

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case exists(path: String)
        case cannotCreate(path: String, reason: String)
        case cannotRead(path: String, reason: String)
        case malformed(path: String, reason: String)
        case tooPermissive(path: String, mode: UInt32)

        public var description: String {
            switch self {
            case let .exists(p): return "\(p) already exists; refusing to overwrite an identity"
            case let .cannotCreate(p, r): return "cannot create \(p): \(r)"
            case let .cannotRead(p, r): return "cannot read identity file \(p): \(r)"
            case let .malformed(p, r): return "\(p) is not a Conclave identity file: \(r)"
            case let .tooPermissive(p, m): return "\(p) is readable by others (mode \(String(m, radix: 8))); run chmod 600 \(p)"
            }
        }
    }

    /// Writes a fresh identity to `path` with mode 0600. Never overwrites.
    @discardableResult
    public static func generate(at path: String) throws(Error) -> PrivateIdentity {
        let identity = PrivateIdentity.generate()
        let text = "\(header)\ned25519-seed \(identity.signingKey.seed.unsafeHexExport())\nx25519-secret \(identity.agreementKey.secret.unsafeHexExport())\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd < 0 {
            if errno == EEXIST { throw .exists(path: path) }
            throw .cannotCreate(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        defer { bytes.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw .cannotCreate(path: path, reason: String(cString: strerror(errno))) }
        return identity
    }

    /// Reads an identity; refuses files readable by group or others.
    public static func load(from path: String) throws(Error) -> PrivateIdentity {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotRead(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotRead(path: path, reason: String(cString: strerror(errno))) }
        guard st.st_mode & 0o077 == 0 else { throw .tooPermissive(path: path, mode: UInt32(st.st_mode & 0o777)) }
        guard st.st_size <= maximumFileLength else { throw .malformed(path: path, reason: "larger than \(maximumFileLength) bytes") }
        var buffer = [UInt8](repeating: 0, count: maximumFileLength)
        defer { buffer.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, maximumFileLength) }
        guard n >= 0 else { throw .cannotRead(path: path, reason: String(cString: strerror(errno))) }
        let lines = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n")
        guard lines.first == Substring(header) else { throw .malformed(path: path, reason: "missing the \(header) header") }
        var seed: [UInt8]?, secret: [UInt8]?
        for line in lines.dropFirst() {
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { throw .malformed(path: path, reason: "unexpected line") }
            guard let bytes = Hex.decode(String(parts[1])), bytes.count == 32 else {
                throw .malformed(path: path, reason: "\(parts[0]) is not 32 bytes of hex")
            }
            switch parts[0] {
            case "ed25519-seed": seed = bytes
            case "x25519-secret": secret = bytes
            default: throw .malformed(path: path, reason: "unknown field \(parts[0].prefix(32))")
            }
        }
        guard let seed, let secret else { throw .malformed(path: path, reason: "missing a key") }
        do {
            return PrivateIdentity(
                signingKey: try Ed25519.PrivateKey(seed: SecretKey(copying: seed)),
                agreementKey: try X25519.PrivateKey(secret: SecretKey(copying: secret)))
        } catch {
            throw .malformed(path: path, reason: "invalid key")
        }
    }
}
