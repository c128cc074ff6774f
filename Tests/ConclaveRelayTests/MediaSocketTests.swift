#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
import ConclaveClient
import ConclaveProtocol
import ConclaveTestSupport
@_spi(Benchmarking) @testable import ConclaveRelay

/// The relay's media sockets (`MediaSocket`): the recvmmsg/sendmmsg loop on a thread of its
/// own, with plain `sockaddr` peers (`MediaAddress`).
@Suite struct MediaAddressTests {
    @Test func ipv4AddressesCompareByFamilyPortAndHostOnly() throws {
        let a = try #require(MediaAddress(try SocketAddress(ipAddress: "127.0.0.1", port: 4000)))
        var raw = sockaddr_in()
        raw.sin_family = sa_family_t(AF_INET)
        raw.sin_port = UInt16(4000).bigEndian
        raw.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        raw.sin_zero = (1, 2, 3, 4, 5, 6, 7, 8)  // not part of the address
        let b = try #require(MediaAddress(raw: &raw, length: socklen_t(MemoryLayout<sockaddr_in>.size)))
        #expect(a == b)
        #expect(a != MediaAddress(try SocketAddress(ipAddress: "127.0.0.1", port: 4001)))
        #expect(a != MediaAddress(try SocketAddress(ipAddress: "127.0.0.2", port: 4000)))
        #expect(a.description == "127.0.0.1:4000" && a.port == 4000 && a.isIPv4)
        #expect(a.socketAddress == (try SocketAddress(ipAddress: "127.0.0.1", port: 4000)))
    }

    @Test func ipv6AddressesIgnoreTheFlowLabel() throws {
        let a = try #require(MediaAddress(try SocketAddress(ipAddress: "::1", port: 5000)))
        #expect(a.description == "[::1]:5000" && !a.isIPv4)
        var raw = a.storage
        raw.sin6_flowinfo = 0x1234
        let b = try #require(MediaAddress(raw: &raw, length: socklen_t(MemoryLayout<sockaddr_in6>.size)))
        #expect(a == b)
        #expect(a != MediaAddress(try SocketAddress(ipAddress: "::2", port: 5000)))
        // An IPv4 address is never equal to an IPv6 one.
        #expect(a != MediaAddress(try SocketAddress(ipAddress: "127.0.0.1", port: 5000)))
    }

    @Test func anythingButIPv4OrIPv6IsRefused() throws {
        var unix = sockaddr_un()
        unix.sun_family = sa_family_t(AF_UNIX)
        #expect(MediaAddress(raw: &unix, length: socklen_t(MemoryLayout<sockaddr_un>.size)) == nil)
        // A truncated IPv4 address.
        var short = sockaddr_in()
        short.sin_family = sa_family_t(AF_INET)
        #expect(MediaAddress(raw: &short, length: 8) == nil)
        #expect(MediaAddress(try SocketAddress(unixDomainSocketPath: "/tmp/x")) == nil)
    }
}

@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.integration), .live) struct MediaSocketTests {
    let rules = RelayRulesTests()

    /// Host and guest admitted, both UDP paths validated. The guest's control connection is
    /// returned too: dropping it would take the guest out of the room.
    func establishedPair(
        _ endpoint: RelayEndpoint, guestReceiveBuffer: Int? = nil
    ) async throws -> (TestParticipant, TestParticipant, UDPTestClient, UDPTestClient) {
        var settings = RoomSettings.privacyDefaults
        settings.muteOnEntry = false
        let (host, guest, _) = try await rules.hostAndGuest(endpoint, settings: settings)
        let hostUDP = try await UDPTestClient.open(try await host.awaitMediaSession())
        let guestUDP = try await UDPTestClient.open(try await guest.awaitMediaSession(), receiveBufferBytes: guestReceiveBuffer)
        try await hostUDP.establish()
        try await guestUDP.establish()
        return (host, guest, hostUDP, guestUDP)
    }

    /// 300 datagrams written at once (about ten `recvmmsg` bursts of 32): each one is
    /// forwarded once, in order, byte for byte. The guest's socket gets a 1 MiB receive
    /// buffer: with the system's default (about 256 such datagrams) the kernel drops what the
    /// test's reader has not taken yet, which is the receiver's loss, not the relay's.
    @Test func aBurstLongerThanOneReadIsForwardedWholeAndInOrder() async throws {
        var configuration = testRelayConfiguration()
        configuration.maxFramesPerSecond = 10_000
        configuration.maxBytesPerSecond = 10_000_000
        try await withRelay(configuration) { server, endpoint in
            let (host, guest, hostUDP, guestUDP) = try await establishedPair(endpoint, guestReceiveBuffer: 1 << 20)
            var sent: [[UInt8]] = []
            let allocator = hostUDP.channel.allocator
            for i in 0..<300 {
                let frame = try frameBytes(.audio, from: host.index, payload: [UInt8](repeating: UInt8(i & 0xFF), count: 160) + [UInt8(i >> 8)])
                sent.append(frame)
                hostUDP.channel.write(
                    AddressedEnvelope(remoteAddress: hostUDP.relay, data: allocator.buffer(bytes: hostUDP.seal(.media, body: frame))), promise: nil)
            }
            hostUDP.channel.flush()
            let received = try await guestUDP.waitForFrames(300, timeout: .seconds(10))
            #expect(received.count == sent.count)
            #expect(received == sent ? true : false, "frames lost, duplicated or reordered")
            #expect(metric(server, "conclave_relay_udp_send_dropped_total") == 0)
            await hostUDP.close(); await guestUDP.close()
            withExtendedLifetime(guest) {}
        }
    }

    /// A datagram longer than the receive slot arrives truncated: dropped as malformed, and
    /// the loop goes on with the next one.
    @Test func anOversizedDatagramIsDroppedAndTheLoopGoesOn() async throws {
        try await withRelay { server, endpoint in
            let (host, guest, hostUDP, guestUDP) = try await establishedPair(endpoint)
            let before = metric(server, "conclave_relay_udp_dropped_total", "reason=\"malformed\"") ?? 0
            try await hostUDP.send([UInt8](repeating: 0x5A, count: MediaSocket.slotBytes + 500))
            let frame = try frameBytes(.audio, from: host.index, payload: [UInt8](repeating: 3, count: 160))
            try await hostUDP.send(hostUDP.seal(.media, body: frame))
            #expect(try await guestUDP.waitForFrames(1) == [frame] ? true : false, "the frame after it was not forwarded")
            #expect(metric(server, "conclave_relay_udp_dropped_total", "reason=\"malformed\"") == before + 1)
            await hostUDP.close(); await guestUDP.close()
            withExtendedLifetime(guest) {}
        }
    }

    /// A send the kernel refuses (here an IPv6 destination on an IPv4 socket) is counted in
    /// `conclave_relay_udp_send_dropped_total`, and the socket goes on serving.
    @Test func aRefusedSendIsCountedNotFatal() async throws {
        try await withRelay { server, endpoint in
            let socket = try #require(server.mediaSockets.value.first)
            let v6 = try #require(MediaAddress(try SocketAddress(ipAddress: "::1", port: 9)))
            let v4 = try #require(MediaAddress(try SocketAddress(ipAddress: "127.0.0.1", port: 9)))
            [UInt8](repeating: 1, count: 40).withUnsafeBytes { socket.send($0, to: [v6, v6, v4]) }
            #expect(metric(server, "conclave_relay_udp_send_dropped_total") ?? 0 >= 2)
            let (host, guest, hostUDP, guestUDP) = try await establishedPair(endpoint)
            let frame = try frameBytes(.audio, from: host.index, payload: [UInt8](repeating: 4, count: 160))
            try await hostUDP.send(hostUDP.seal(.media, body: frame))
            #expect(try await guestUDP.waitForFrames(1) == [frame])
            await hostUDP.close(); await guestUDP.close()
            withExtendedLifetime(guest) {}
        }
    }

    /// A send from another thread (a WebSocket frame for UDP members) that is under way when
    /// the socket stops still writes to the socket it was admitted on: `stop()` waits for it
    /// before closing the descriptor. Closing under it would fail the send (`EBADF`), or write
    /// the relay's media to whatever the process opened next on the same number.
    @Test func aSendUnderWayWhenTheSocketStopsFinishesBeforeTheClose() async throws {
        var logger = Logger(label: "test.relay")
        logger.logLevel = .warning
        let server = try RelayServer(configuration: testRelayConfiguration(), logger: logger)
        try await server.start()
        let socket = try #require(server.mediaSockets.value.first)

        let receiver = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(receiver) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try #require(bind(receiver, $0, length) == 0)
                try #require(getsockname(receiver, $0, &length) == 0)
            }
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(receiver, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let target = try #require(MediaAddress(raw: &address, length: length))

        final class Flags: Sendable {
            let stopped = Atomic<Bool>(false)
            let stopReachedTheClose = Atomic<Bool>(false)
            let stoppedBeforeTheWrite = Atomic<Bool>(false)
        }
        let flags = Flags()
        socket.sendAdmittedHook = {
            // The socket stops while this send is between its admission and its write.
            DispatchQueue.global().async {
                socket.stop()
                flags.stopped.store(true, ordering: .sequentiallyConsistent)
            }
            let deadline = ContinuousClock.now + .seconds(20)
            while !socket.awaitingSenders.load(ordering: .sequentiallyConsistent), ContinuousClock.now < deadline {
                sched_yield()
            }
            flags.stopReachedTheClose.store(socket.awaitingSenders.load(ordering: .sequentiallyConsistent), ordering: .sequentiallyConsistent)
            // Time for a stop() that does not wait to close the descriptor under this send.
            let grace = ContinuousClock.now + .milliseconds(300)
            while !flags.stopped.load(ordering: .sequentiallyConsistent), ContinuousClock.now < grace {
                usleep(500)
            }
            flags.stoppedBeforeTheWrite.store(flags.stopped.load(ordering: .sequentiallyConsistent), ordering: .sequentiallyConsistent)
        }
        let dropsBefore = metric(server, "conclave_relay_udp_send_dropped_total") ?? 0
        let payload: [UInt8] = Array("still on the socket it was admitted on".utf8)
        payload.withUnsafeBytes { socket.send($0, to: [target]) }
        socket.sendAdmittedHook = nil
        let reached = flags.stopReachedTheClose.load(ordering: .sequentiallyConsistent)
        #expect(reached, "stop() never got past joining its thread")
        let early = flags.stoppedBeforeTheWrite.load(ordering: .sequentiallyConsistent)
        #expect(!early, "stop() closed the descriptor while a send was under way")

        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(receiver, &buffer, buffer.count, 0)
        #expect(n == payload.count && Array(buffer.prefix(max(n, 0))) == payload, "the send was lost (recv: \(n), errno \(errno))")
        #expect(metric(server, "conclave_relay_udp_send_dropped_total") ?? 0 == dropsBefore, "the send failed")
        try await waitUntil("stop() returns once the send is done") {
            flags.stopped.load(ordering: .sequentiallyConsistent)
        }
        // A send after the stop is refused before it touches the descriptor.
        payload.withUnsafeBytes { socket.send($0, to: [target]) }
        #expect(metric(server, "conclave_relay_udp_send_dropped_total") ?? 0 == dropsBefore)
        await server.shutdown()
    }

    /// Shutting the relay down stops every media thread and closes its socket: the port
    /// can then be bound again without SO_REUSEPORT.
    @Test func shutdownStopsTheThreadsAndReleasesThePort() async throws {
        var logger = Logger(label: "test.relay")
        logger.logLevel = .warning
        var configuration = testRelayConfiguration()
        configuration.mediaThreads = 2
        let server = try RelayServer(configuration: configuration, logger: logger)
        try await server.start()
        let port = try #require(server.mediaPort)
        #expect(server.mediaSockets.value.count == 2)
        await server.shutdown()
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == 0, "the media port is still held after shutdown (errno \(errno))")
    }
}
