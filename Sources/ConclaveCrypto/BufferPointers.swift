import CSodium

/// A one-byte static allocation that stands in for the base address of an empty buffer
/// where libsodium declares a parameter `nonnull` (it reads zero bytes from it).
nonisolated(unsafe) let emptyByte: UnsafeMutablePointer<UInt8> = {
    let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
}()

// Typed views of raw buffers for libsodium's `unsigned char *` parameters.
extension UnsafeRawBufferPointer {
    /// May be nil for an empty buffer (for parameters libsodium accepts as NULL).
    @usableFromInline var u8: UnsafePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
    /// Never nil: an empty buffer yields a valid one-byte static address.
    @usableFromInline var u8nn: UnsafePointer<UInt8> { baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(emptyByte) }
}

extension UnsafeMutableRawBufferPointer {
    @usableFromInline var u8: UnsafeMutablePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
    @usableFromInline var u8nn: UnsafeMutablePointer<UInt8> { baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyByte }

    /// Overwrites the buffer with zeros in a way the compiler cannot elide.
    @usableFromInline func wipe() {
        if let base = baseAddress, count > 0 { sodium_memzero(base, count) }
    }
}
