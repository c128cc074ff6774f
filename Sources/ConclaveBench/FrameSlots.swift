/// A batch of preallocated frame buffers for the in-place paths.
///
/// `count` slots, each `plaintextLength + 16` bytes (body then tag, i.e. libsodium's
/// combined `ciphertext || tag` layout), in one 64-byte-aligned allocation with every
/// slot starting on a cache line. Filled with the reference plaintext at init; after a
/// seal-then-open round trip every body holds the reference plaintext again.
final class FrameSlots {
    static let tagLength = 16

    let count: Int
    let plaintextLength: Int
    private let stride: Int
    private let base: UnsafeMutableRawPointer

    init(count: Int, plaintext: [UInt8]) {
        precondition(count > 0)
        self.count = count
        self.plaintextLength = plaintext.count
        self.stride = (plaintext.count + Self.tagLength + 63) & ~63
        self.base = UnsafeMutableRawPointer.allocate(byteCount: stride * count, alignment: 64)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: stride * count)
        for i in 0..<count {
            plaintext.withUnsafeBytes { body(i).copyMemory(from: $0) }
        }
    }

    deinit { base.deallocate() }

    /// The `plaintextLength` bytes of slot `i`.
    @inline(__always)
    func body(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * stride, count: plaintextLength)
    }

    /// The 16 tag bytes after the body of slot `i`.
    @inline(__always)
    func tag(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * stride + plaintextLength, count: Self.tagLength)
    }

    /// Body and tag of slot `i` together (`plaintextLength + 16` bytes).
    @inline(__always)
    func sealed(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + i * stride, count: plaintextLength + Self.tagLength)
    }

    /// True when every body equals `plaintext`.
    func allBodiesEqual(_ plaintext: [UInt8]) -> Bool {
        (0..<count).allSatisfy { i in plaintext.withUnsafeBytes { body(i).elementsEqual($0) } }
    }
}

extension UnsafeMutableRawBufferPointer {
    /// `unsigned char *` for libsodium. Only for buffers known to be non-empty.
    @inline(__always)
    var bytePointer: UnsafeMutablePointer<UInt8> { baseAddress!.assumingMemoryBound(to: UInt8.self) }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    var bytePointer: UnsafePointer<UInt8> { baseAddress!.assumingMemoryBound(to: UInt8.self) }
}
