import CSodium
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One-time libsodium initialisation.
///
/// `sodium_init()` is idempotent and thread-safe; Swift runs the `static let`
/// initialiser exactly once. Every public entry point of this module that calls into
/// libsodium calls ``ensureInitialized()`` first (it costs one already-initialised
/// check after the first call).
public enum Sodium {
    /// Constant-time equality of two byte arrays (`sodium_memcmp`); unequal lengths are
    /// unequal (lengths are not secret).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        ensureInitialized()
        return a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 } }
    }

    private static let initialized: Bool = sodium_init() >= 0

    /// Initialises libsodium if needed. Traps if libsodium cannot initialise (it only
    /// fails when the system has no usable randomness source, where no key could be safe).
    @inlinable
    public static func ensureInitialized() {
        precondition(isInitialized, "libsodium failed to initialise (no randomness source?)")
    }

    @usableFromInline
    static var isInitialized: Bool { initialized }

    /// libsodium's version string, e.g. "1.0.18".
    public static var versionString: String {
        ensureInitialized()
        let c = sodium_version_string()!
        return String(decoding: UnsafeRawBufferPointer(start: c, count: strlen(c)), as: UTF8.self)
    }
}

/// Cryptographically secure random bytes from libsodium (`randombytes_buf`).
public enum SecureRandom {
    /// Fills `buffer` with random bytes. Does not allocate.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        Sodium.ensureInitialized()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }

    /// Returns `count` random bytes.
    public static func bytes(count: Int) -> [UInt8] {
        precondition(count >= 0)
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// A uniformly random integer in `0..<upperBound` (`randombytes_uniform`).
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        Sodium.ensureInitialized()
        return randombytes_uniform(upperBound)
    }
}
