import CSodium

/// Secret bytes that own their storage, wipe it on deinit, compare in constant time
/// and never print their contents.
///
/// Storage is an ordinary heap allocation wiped with `sodium_memzero` when the last
/// reference goes away. `sodium_malloc` was considered and not used: it costs three or
/// four pages plus guard pages per allocation and an `mlock` each, and a meeting holds
/// a key per sender per epoch (thousands in a load run), which exhausts
/// `RLIMIT_MEMLOCK`. The bytes are reachable only through ``withUnsafeBytes(_:)``.
public struct SecretBytes: Sendable {
    @usableFromInline
    final class Storage: @unchecked Sendable {
        // @unchecked: the bytes are written once in init and only read afterwards.
        @usableFromInline let pointer: UnsafeMutableRawPointer
        @usableFromInline let count: Int

        init(count: Int) {
            self.count = count
            self.pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        }

        deinit {
            sodium_memzero(pointer, max(count, 1))
            pointer.deallocate()
        }
    }

    @usableFromInline let storage: Storage

    /// Creates a value of `count` bytes filled by `body`. The closure must write every byte.
    public init(count: Int, initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(count >= 0)
        let storage = Storage(count: count)
        let buffer = UnsafeMutableRawBufferPointer(start: storage.pointer, count: count)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        try body(buffer)
        self.storage = storage
    }

    /// Copies `bytes`. The caller remains responsible for wiping its own copy.
    public init<Bytes: Collection>(copying bytes: Bytes) where Bytes.Element == UInt8 {
        self.init(count: bytes.count) { buffer in
            _ = buffer.initializeMemory(as: UInt8.self, from: bytes)
        }
    }

    /// `count` cryptographically random bytes.
    public static func random(count: Int) -> SecretBytes {
        SecretBytes(count: count) { SecureRandom.fill($0) }
    }

    /// The number of bytes.
    public var count: Int { storage.count }

    /// Gives read access to the bytes. Do not let the pointer escape.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: storage.count))
    }
}

extension SecretBytes: Equatable {
    /// Constant-time comparison (`sodium_memcmp`) for equal lengths. Lengths are not secret.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 { return true }
        return sodium_memcmp(lhs.storage.pointer, rhs.storage.pointer, lhs.count) == 0
    }
}

extension SecretBytes: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
    /// No children: `dump` and reflection show nothing of the contents.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// A symmetric secret key (AEAD key, epoch secret, base key, HKDF output…).
///
/// A thin, typed wrapper around ``SecretBytes``: same wiping, constant-time equality and
/// redacted description.
public struct SecretKey: Sendable, Equatable {
    public let bytes: SecretBytes

    public init(_ bytes: SecretBytes) { self.bytes = bytes }

    /// Copies the given key bytes.
    public init<Bytes: Collection>(copying bytes: Bytes) where Bytes.Element == UInt8 {
        self.bytes = SecretBytes(copying: bytes)
    }

    /// A fresh random key of `count` bytes (32 by default).
    public static func random(count: Int = 32) -> SecretKey { SecretKey(.random(count: count)) }

    public var count: Int { bytes.count }

    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }

    /// Hex export, for writing test vectors and identity files only. Never log it.
    public func unsafeHexExport() -> String {
        withUnsafeBytes { Hex.encode($0) }
    }
}

extension SecretKey: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "SecretKey(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
