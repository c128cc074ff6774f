import CSodium

/// SHA-256 and SHA-512 (libsodium `crypto_hash_sha256` / `crypto_hash_sha512`).
public enum SHA2 {
    public static func sha256<Bytes: ContiguousBytes>(_ data: Bytes) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        data.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { o in
                _ = crypto_hash_sha256(
                    o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    input.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    UInt64(input.count))
            }
        }
        return out
    }

    public static func sha512<Bytes: ContiguousBytes>(_ data: Bytes) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha512_BYTES))
        data.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { o in
                _ = crypto_hash_sha512(
                    o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    input.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    UInt64(input.count))
            }
        }
        return out
    }
}

/// Anything that can lend its bytes contiguously. `[UInt8]`, `ArraySlice<UInt8>`,
/// `UnsafeRawBufferPointer` and ``SecretBytes`` conform.
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension ContiguousArray: ContiguousBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}
extension UnsafeMutableRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(self))
    }
}
extension SecretBytes: ContiguousBytes {}
extension SecretKey: ContiguousBytes {}
extension String.UTF8View: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Array(self).withUnsafeBytes(body)
    }
}
