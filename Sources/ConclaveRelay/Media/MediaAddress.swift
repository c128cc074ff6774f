#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// A UDP peer of the media path: the raw `sockaddr_in` or `sockaddr_in6`, as a plain value.
///
/// The forwarding path copies, compares and hands these to `sendmmsg` for every recipient
/// of every datagram. Unlike NIO's `SocketAddress` (a reference-counted box with a host
/// string), copying one costs no reference count and making one from `recvmmsg`'s output
/// allocates nothing.
struct MediaAddress: Equatable, Sendable, CustomStringConvertible {
    /// The address; an IPv4 `sockaddr_in` occupies its first 16 bytes, the rest zero.
    private(set) var storage = sockaddr_in6()
    /// `sizeof(sockaddr_in)` or `sizeof(sockaddr_in6)`.
    let length: socklen_t

    /// From a socket address as `recvmmsg` filled it in; nil for anything but IPv4 or IPv6.
    init?(raw: UnsafeRawPointer, length: socklen_t) {
        switch Int32(raw.load(as: sa_family_t.self)) {
        case AF_INET where length >= socklen_t(MemoryLayout<sockaddr_in>.size):
            self.length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: MemoryLayout<sockaddr_in>.size)) }
            // sin_zero as sent by nobody in particular: not part of the address.
            withUnsafeMutableBytes(of: &storage) { b in
                for i in 8..<MemoryLayout<sockaddr_in>.size { b[i] = 0 }
            }
        case AF_INET6 where length >= socklen_t(MemoryLayout<sockaddr_in6>.size):
            self.length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            storage = raw.loadUnaligned(as: sockaddr_in6.self)
            storage.sin6_flowinfo = 0
        default:
            return nil
        }
    }

    /// From NIO's address (tests, the in-process harness); nil for a Unix domain socket.
    init?(_ address: SocketAddress) {
        switch address {
        case .v4(let a):
            var v4 = a.address
            self.init(raw: &v4, length: socklen_t(MemoryLayout<sockaddr_in>.size))
        case .v6(let a):
            var v6 = a.address
            self.init(raw: &v6, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
        case .unixDomainSocket:
            return nil
        }
    }

    static func == (a: MediaAddress, b: MediaAddress) -> Bool {
        guard a.length == b.length else { return false }
        return withUnsafeBytes(of: a.storage) { x in
            withUnsafeBytes(of: b.storage) { y in memcmp(x.baseAddress!, y.baseAddress!, Int(a.length)) == 0 }
        }
    }

    /// Where `storage` sits in the struct (a pointer to an element of a `[MediaAddress]` plus
    /// this is a `sockaddr *`).
    static let storageOffset = MemoryLayout<MediaAddress>.offset(of: \MediaAddress.storage)!

    var isIPv4: Bool { length == socklen_t(MemoryLayout<sockaddr_in>.size) }

    /// The port, in host byte order.
    var port: Int { Int(UInt16(bigEndian: storage.sin6_port)) }

    /// NIO's form of the same address.
    var socketAddress: SocketAddress {
        if isIPv4 {
            let v4 = withUnsafeBytes(of: storage) { $0.loadUnaligned(as: sockaddr_in.self) }
            return SocketAddress(v4, host: host)
        }
        return SocketAddress(storage, host: host)
    }

    /// The numeric host (`127.0.0.1`, `::1`).
    var host: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = isIPv4 ? AF_INET : AF_INET6
        let ok = withUnsafeBytes(of: storage) { b -> Bool in
            // sin_addr sits at offset 4 of sockaddr_in, sin6_addr at offset 8 of sockaddr_in6.
            let address = b.baseAddress! + (isIPv4 ? 4 : 8)
            return inet_ntop(family, address, &text, socklen_t(text.count)) != nil
        }
        guard ok else { return "?" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var description: String { isIPv4 ? "\(host):\(port)" : "[\(host)]:\(port)" }
}
