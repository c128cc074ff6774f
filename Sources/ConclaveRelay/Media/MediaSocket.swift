#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Synchronization
import CConclaveUDP
import ConclaveProtocol

/// One UDP media socket and the thread that serves it (protocol 6): the relay's forwarding
/// loop.
///
/// The relay binds `media-threads` of these on one port with `SO_REUSEPORT`; the kernel
/// spreads clients over them. Each thread runs the loop a forwarding program is made of, on
/// its own socket and its own buffers:
/// 1. a blocking `recvmmsg` of up to ``burst`` datagrams into fixed buffers;
/// 2. every datagram through ``RelayCore/mediaDatagram(_:from:targets:)`` (parse, session,
///    hop tag, replay window, address validation, rate limits, room policy), which lists
///    its recipients;
/// 3. one `sendmmsg` for the whole burst's fan-out, each message pointing into the receive
///    buffer (no copy) and at a recipient's address.
///
/// No event loop, channel pipeline, promise or per-packet allocation sits between the
/// socket and the policy. Sends never block (`MSG_DONTWAIT`): a datagram the kernel will
/// not take because the send buffer is full is dropped and counted
/// (`conclave_relay_udp_send_dropped_total`), as a router drops on a full queue.
/// Other threads (frames arriving on a WebSocket for UDP recipients, ``send(_:to:)``) send on
/// the same socket; the kernel serialises sends on one socket.
final class MediaSocket: @unchecked Sendable {
    /// Datagrams per `recvmmsg`.
    static let burst = 32
    /// Receive buffer per datagram: above ``MediaDatagram/maximumLength``, so that anything
    /// longer arrives truncated to a length `parse` refuses (`too_long`).
    static let slotBytes = 2_048
    /// Messages per `sendmmsg` (the kernel's `UIO_MAXIOV`); a larger fan-out takes several.
    static let sendBatch = 1_024
    /// How long a `recvmmsg` waits before the thread looks at its stop flag again (a stop
    /// also wakes it at once with `shutdown`).
    static let receiveTimeoutMilliseconds = 200

    let fd: CInt
    /// The bound port (host order).
    let port: Int
    private let core: RelayCore
    private let stopping = Atomic<Bool>(false)
    /// Threads inside ``send(_:to:)`` right now. ``stop()`` closes the descriptor only once
    /// this is 0, so a send racing a stop never writes to a closed descriptor, or to one the
    /// process has since reused for something else.
    private let senders = Atomic<Int>(0)
    /// Set by ``stop()`` once its thread is joined, as it waits for ``senders`` (for tests).
    let awaitingSenders = Atomic<Bool>(false)
    /// Called inside ``send(_:to:)`` once the send is admitted, before it writes (tests only).
    nonisolated(unsafe) var sendAdmittedHook: (() -> Void)?
    /// Set by ``start(name:)``; read by ``stop()`` (after `start`, on one thread at a time).
    private var thread: pthread_t?
    private var threadName = ""

    // The loop's buffers, touched only by its thread.
    private let data: UnsafeMutableRawPointer
    private let names: UnsafeMutablePointer<sockaddr_in6>
    private let inVectors: UnsafeMutablePointer<iovec>
    private let inMessages: UnsafeMutablePointer<conclave_mmsghdr>
    private let outNames: UnsafeMutablePointer<sockaddr_in6>
    private let outVectors: UnsafeMutablePointer<iovec>
    private let outMessages: UnsafeMutablePointer<conclave_mmsghdr>
    /// What one pass of the loop accumulates. A local of ``run()``, passed `inout`, rather
    /// than stored properties of this class, whose every access the runtime checks for
    /// exclusivity (`swift_beginAccess`, a thread-local look-up) per datagram.
    private struct Burst {
        /// Messages filled in `outMessages`, not yet sent.
        var pending = 0
        var targets = MediaTargets(capacity: 64)
    }

    /// Binds `count` sockets on `host:port` with `SO_REUSEPORT` (port 0: a free port, the
    /// same for all) and starts their threads.
    static func bind(host: String, port: Int, count: Int, core: RelayCore) throws -> [MediaSocket] {
        var sockets: [MediaSocket] = []
        var port = port
        do {
            for i in 0..<count {
                let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
                let socket = try MediaSocket(binding: address, core: core)
                port = socket.port
                sockets.append(socket)
                socket.start(name: "conclave-udp-\(i)")
            }
        } catch {
            for socket in sockets { socket.stop() }
            throw error
        }
        return sockets
    }

    private init(binding address: SocketAddress, core: RelayCore) throws {
        self.core = core
        let family = address.protocol.rawValue
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MediaSocketError.system("socket", errno) }
        func option(_ level: Int32, _ name: Int32, _ value: Int32) throws {
            var v = value
            guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                let e = errno
                close(fd)
                throw MediaSocketError.system("setsockopt", e)
            }
        }
        try option(SOL_SOCKET, SO_REUSEADDR, 1)
        try option(SOL_SOCKET, SO_REUSEPORT, 1)
        try option(SOL_SOCKET, SO_RCVBUF, 4 * 1024 * 1024)
        try option(SOL_SOCKET, SO_SNDBUF, 4 * 1024 * 1024)
        var timeout = timeval(tv_sec: 0, tv_usec: Self.receiveTimeoutMilliseconds * 1_000)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
            let e = errno
            close(fd)
            throw MediaSocketError.system("setsockopt", e)
        }
        let bound = address.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw MediaSocketError.system("bind", e)
        }
        var local = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let e = errno
            close(fd)
            throw MediaSocketError.system("getsockname", e)
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: local.sin6_port))

        let burst = Self.burst
        data = .allocate(byteCount: burst * Self.slotBytes, alignment: 16)
        names = .allocate(capacity: burst)
        inVectors = .allocate(capacity: burst)
        inMessages = .allocate(capacity: burst)
        outNames = .allocate(capacity: Self.sendBatch)
        outVectors = .allocate(capacity: Self.sendBatch)
        outMessages = .allocate(capacity: Self.sendBatch)
        names.initialize(repeating: sockaddr_in6(), count: burst)
        outNames.initialize(repeating: sockaddr_in6(), count: Self.sendBatch)
        for i in 0..<burst {
            inVectors[i] = iovec(iov_base: data + i * Self.slotBytes, iov_len: Self.slotBytes)
            inMessages[i] = conclave_mmsghdr()
            inMessages[i].msg_hdr.msg_iov = inVectors + i
            inMessages[i].msg_hdr.msg_iovlen = 1
            inMessages[i].msg_hdr.msg_name = UnsafeMutableRawPointer(names + i)
        }
        for i in 0..<Self.sendBatch {
            outVectors[i] = iovec()
            outMessages[i] = conclave_mmsghdr()
            outMessages[i].msg_hdr.msg_iov = outVectors + i
            outMessages[i].msg_hdr.msg_iovlen = 1
            outMessages[i].msg_hdr.msg_name = UnsafeMutableRawPointer(outNames + i)
        }
    }

    deinit {
        data.deallocate()
        names.deallocate()
        inVectors.deallocate()
        inMessages.deallocate()
        outNames.deallocate()
        outVectors.deallocate()
        outMessages.deallocate()
    }

    private func start(name: String) {
        threadName = name
        let unmanaged = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { argument in
                let socket = Unmanaged<MediaSocket>.fromOpaque(argument!).takeRetainedValue()
                _ = socket.threadName.withCString { conclave_name_this_thread($0) }
                socket.run()
                return nil
            }, unmanaged.toOpaque())
        precondition(result == 0, "pthread_create: \(result)")
        self.thread = thread
    }

    /// Stops the thread, waits for it and for any ``send(_:to:)`` in progress, and closes
    /// the socket. Blocks for at most about ``receiveTimeoutMilliseconds`` plus one send;
    /// call it off any event loop.
    func stop() {
        // Sequentially consistent with `send`'s increment-then-check: either a sender sees
        // `stopping` and backs off, or this sees the sender counted and waits for it.
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        // Wakes a blocked recvmmsg (Linux wakes a datagram socket's readers on shutdown, even
        // unconnected, though the call reports ENOTCONN). Only the reading side: a send under
        // way from another thread still goes out.
        _ = shutdown(fd, Int32(SHUT_RD))
        if let thread { pthread_join(thread, nil) }
        awaitingSenders.store(true, ordering: .sequentiallyConsistent)
        // A send never blocks (MSG_DONTWAIT, and the socket is shut down): this wait is short.
        while senders.load(ordering: .sequentiallyConsistent) > 0 {
            sched_yield()
        }
        close(fd)
    }

    // MARK: - The loop

    private func run() {
        let burst = Self.burst
        var state = Burst()
        while !stopping.load(ordering: .relaxed) {
            for i in 0..<burst {
                inMessages[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
                inMessages[i].msg_hdr.msg_flags = 0
                inMessages[i].msg_len = 0
            }
            let n = conclave_recvmmsg_waitforone(fd, inMessages, UInt32(burst))
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK || e == EINTR { continue }
                if e == EBADF || e == ENOTSOCK || e == EINVAL { return }
                // ICMP errors reported on the socket and the like: nothing to close.
                core.metrics.udpDropped("other")
                continue
            }
            for i in 0..<Int(n) {
                handle(i, &state)
            }
            flush(&state)
        }
    }

    private func handle(_ i: Int, _ state: inout Burst) {
        let length = Int(inMessages[i].msg_len)
        guard let from = MediaAddress(raw: names + i, length: inMessages[i].msg_hdr.msg_namelen) else {
            core.metrics.udpDropped("other")
            return
        }
        let datagram = UnsafeRawBufferPointer(start: data + i * Self.slotBytes, count: length)
        defer { state.targets.reset() }
        switch core.mediaDatagram(datagram, from: from, targets: &state.targets) {
        case .forward(let body):
            let start = datagram.baseAddress! + body.lowerBound
            for address in state.targets.udp {
                if state.pending == Self.sendBatch { flush(&state) }
                let k = state.pending
                outVectors[k].iov_base = UnsafeMutableRawPointer(mutating: start)
                outVectors[k].iov_len = body.count
                withUnsafeBytes(of: address.storage) { UnsafeMutableRawPointer(outNames + k).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                outMessages[k].msg_hdr.msg_namelen = address.length
                state.pending = k + 1
            }
            if !state.targets.websocket.isEmpty {
                let frame = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: datagram[body]))
                for outbox in state.targets.websocket {
                    outbox.send(frame, class: .media)
                }
            }
        case .acknowledge(let ack):
            core.metrics.udpKeepalives.increment()
            ack.withUnsafeBytes { sendOne($0, to: from) }
        case .notify(let outbox, let notice):
            outbox.send(RelayMessage.error(notice))
        case .dropped:
            break
        }
    }

    /// Sends the burst's fan-out (the loop's thread only).
    private func flush(_ state: inout Burst) {
        let pending = state.pending
        var offset = 0
        while offset < pending {
            let sent = conclave_sendmmsg_dontwait(fd, outMessages + offset, UInt32(pending - offset))
            if sent <= 0 {
                if sent < 0 && errno == EINTR { continue }
                core.metrics.udpSendDropped.increment(by: Int64(pending - offset))
                break
            }
            offset += Int(sent)
        }
        state.pending = 0
    }

    private func sendOne(_ bytes: UnsafeRawBufferPointer, to address: MediaAddress) {
        let sent = withUnsafeBytes(of: address.storage) { name in
            sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), name.baseAddress!.assumingMemoryBound(to: sockaddr.self), address.length)
        }
        if sent < 0 { core.metrics.udpSendDropped.increment() }
    }

    // MARK: - Sends from other threads

    /// Sends `bytes` to every address, in `sendmmsg` batches, without blocking: what the
    /// kernel refuses is dropped and counted. For frames that arrive on a WebSocket and go
    /// to members on UDP; any thread.
    func send(_ bytes: UnsafeRawBufferPointer, to addresses: [MediaAddress]) {
        guard !addresses.isEmpty else { return }
        senders.add(1, ordering: .sequentiallyConsistent)
        defer { senders.subtract(1, ordering: .sequentiallyConsistent) }
        guard !stopping.load(ordering: .sequentiallyConsistent) else { return }
        sendAdmittedHook?()
        addresses.withUnsafeBufferPointer { list in
            var offset = 0
            while offset < list.count {
                let count = min(list.count - offset, 64)
                let sent = withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors in
                    withUnsafeTemporaryAllocation(of: conclave_mmsghdr.self, capacity: count) { messages in
                        for k in 0..<count {
                            vectors[k] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                            messages[k] = conclave_mmsghdr()
                            messages[k].msg_hdr.msg_iov = vectors.baseAddress! + k
                            messages[k].msg_hdr.msg_iovlen = 1
                            // The kernel only reads the name on a send.
                            let element = UnsafeMutableRawPointer(mutating: list.baseAddress! + offset + k)
                            messages[k].msg_hdr.msg_name = element + MediaAddress.storageOffset
                            messages[k].msg_hdr.msg_namelen = list[offset + k].length
                        }
                        var done = 0
                        while done < count {
                            let n = conclave_sendmmsg_dontwait(fd, messages.baseAddress! + done, UInt32(count - done))
                            if n <= 0 {
                                if n < 0 && errno == EINTR { continue }
                                break
                            }
                            done += Int(n)
                        }
                        return done
                    }
                }
                if sent < count { core.metrics.udpSendDropped.increment(by: Int64(count - sent)) }
                offset += count
            }
        }
    }
}

/// Setting up a media socket failed.
enum MediaSocketError: Error, CustomStringConvertible {
    case system(String, Int32)

    var description: String {
        switch self {
        case .system(let call, let code): "\(call) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }
}
