import Foundation
import Testing
import NIOCore
import NIOPosix
import ConclaveSystem
import ConclaveTestSupport

/// The ports test servers are given. A port from ``LoopbackPort/free()`` is released before
/// the server binds it; in that window anything else that binds port 0 (every in-process
/// relay and listener of the suite) could be handed the same port by the kernel, and the
/// test would then talk to the wrong server (a RESP client that read an HTTP reply:
/// "unknown type byte 0x48").
@Suite struct LoopbackPortTests {
    /// The kernel's range for port 0 and outgoing connections, as this machine has it. Read
    /// here rather than through `LoopbackPort`'s own reading, so that a mistake there
    /// cannot hide itself from this test.
    private func ephemeralRange() throws -> ClosedRange<Int> {
        let text = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(bounds.count == 2)
        return bounds[0]...bounds[1]
    }

    @Test func freePortsAreOutsideTheKernelsEphemeralRangeAndNeverRepeat() async throws {
        let ephemeral = try ephemeralRange()
        var seen = Set<Int>()
        for _ in 0..<50 {
            let port = try await LoopbackPort.free()
            #expect(!ephemeral.contains(port), "port \(port) is one the kernel hands to bind(0) (\(ephemeral))")
            #expect(seen.insert(port).inserted, "port \(port) handed out twice")
        }
    }

    /// The check that a server process, not just anyone, listens on its port.
    @Test func theListenersProcessIsFoundByItsSocket() async throws {
        let port = try await LoopbackPort.free()
        #expect(LoopbackPort.listeningProcess(port: port, among: [getpid()]) == nil, "nothing listens yet")
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: port).get()
        #expect(listener.localAddress?.port == port)
        #expect(LoopbackPort.listeningProcess(port: port, among: [getpid()]) == getpid())
        #expect(LoopbackPort.listeningProcess(port: port, among: [getppid()]) == nil, "the parent does not hold it")
        try await listener.close()
        #expect(LoopbackPort.listeningProcess(port: port, among: [getpid()]) == nil, "closed")
    }

    /// `/proc/net/tcp` is as long as the machine's socket table: with the suite's other
    /// listeners and connections open it runs far past one page, and a reader that stops at
    /// its first 4 KiB (Foundation's `String(contentsOfFile:)` does, for a `/proc` file whose
    /// size reads as 0) misses most listeners. Every one of 150 must be found.
    @Test func everyListenerIsFoundWhenTheSocketTableIsLong() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        var listeners: [Channel] = []
        for _ in 0..<150 {
            listeners.append(try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get())
        }
        let table = try LocalFile.read("/proc/net/tcp", limit: 16 << 20)
        #expect(table.count > 8_192, "the table is longer than two pages (\(table.count) bytes)")
        var missed: [Int] = []
        for listener in listeners {
            let port = try #require(listener.localAddress?.port)
            if LoopbackPort.listeningProcess(port: port, among: [getpid()]) != getpid() { missed.append(port) }
        }
        for listener in listeners { try await listener.close() }
        #expect(missed.count == 0, "\(missed.count) of \(listeners.count) listeners not found, e.g. port \(missed.first ?? 0)")
    }
}
