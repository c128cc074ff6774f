import ConclaveChildProcess
import ConclaveSystem
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Loopback ports for test servers.
public enum LoopbackPort {
    /// Where ``free()`` looks: from 20 000 up to the kernel's ephemeral range, which the
    /// kernel never hands to a bind to port 0 or to an outgoing connection. A port from this
    /// pool is released before the test's server binds it; were it an ephemeral port, any of
    /// the suite's in-process listeners (all bound to port 0) could be given it in that
    /// window, and the test would talk to the wrong server. Empty when the ephemeral range
    /// starts too low to leave room (then ``free()`` asks the kernel, as a last resort).
    static let pool: Range<Int> = {
        let low = ephemeralRange?.lowerBound ?? 32_768
        return low - 20_000 >= 1_000 ? 20_000..<low : 20_000..<20_000
    }()

    /// `/proc/sys/net/ipv4/ip_local_port_range`, when readable.
    static var ephemeralRange: ClosedRange<Int>? {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else { return nil }
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] <= bounds[1] else { return nil }
        return bounds[0]...bounds[1]
    }

    /// The next candidate in ``pool``: each port once per round, in this process. Starts at
    /// an offset from the process id, so two test processes on one machine start apart.
    private static let cursor = Atomic<Int>(Int(getpid()) &* 7_919)

    /// A loopback TCP port nothing listens on now (bound, checked and released), from
    /// ``pool``; never the same port twice in a process until the pool has gone round.
    public static func free() async throws -> Int {
        let group = MultiThreadedEventLoopGroup.singleton
        guard !pool.isEmpty else {
            let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
            let port = channel.localAddress!.port!
            try await channel.close()
            return port
        }
        // Bounded: at most one round of the pool.
        for _ in 0..<pool.count {
            let k = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
            let port = pool.lowerBound + ((k % pool.count) + pool.count) % pool.count
            guard let channel = try? await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: port).get() else { continue }
            try await channel.close()
            return port
        }
        throw TestTimeout(what: "a free loopback port in \(pool) (all \(pool.count) are taken)")
    }

    /// Why a child did not become the listener on its port.
    public struct NotListening: Error, CustomStringConvertible {
        public let description: String
    }

    /// Waits until `child` itself listens on TCP `127.0.0.1:port`: the listening socket
    /// (from `/proc/net/tcp`) is one of the child's descriptors. Something else accepting on
    /// the port does not count. Throws ``NotListening`` at once if the child exits first (a
    /// server that could not bind: its standard error's end is in the message), and after
    /// `within` if the child is still not the listener (naming whoever holds the port).
    public static func waitUntilListening(_ port: Int, by child: ChildProcess, within: Duration) async throws {
        let name = "127.0.0.1:\(port)"
        let listening = try await eventually(within: within) {
            if let exit = child.exit {
                throw NotListening(
                    description: "process \(child.processIdentifier) ended (\(exit)) before listening on \(name): \(child.standardError.suffix(300))")
            }
            return listeningProcess(port: port, among: [child.processIdentifier]) == child.processIdentifier
        }
        guard listening else {
            let holder = listenerInode(port: port) == nil ? "nothing listens there" : "another process listens there"
            throw NotListening(description: "process \(child.processIdentifier) did not listen on \(name) within \(within); \(holder)")
        }
    }

    /// Which of `candidates` holds the socket that listens on TCP loopback `port`, if any.
    public static func listeningProcess(port: Int, among candidates: [Int32]) -> Int32? {
        guard let inode = listenerInode(port: port) else { return nil }
        let link = "socket:[\(inode)]"
        for pid in candidates {
            let fdDirectory = "/proc/\(pid)/fd"
            guard let fds = try? FileManager.default.contentsOfDirectory(atPath: fdDirectory) else { continue }
            for fd in fds where (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDirectory)/\(fd)")) == link {
                return pid
            }
        }
        return nil
    }

    /// The most of `/proc/net/tcp` read: 150 bytes a socket, so about 100 000 sockets.
    static let tableLimit = 16 << 20

    /// The inode of the socket listening on `port` (state `0A` in `/proc/net/tcp` or
    /// `tcp6`), if any.
    static func listenerInode(port: Int) -> String? {
        let portHex = String(port, radix: 16, uppercase: true)
        let suffix = ":" + String(repeating: "0", count: max(0, 4 - portHex.count)) + portHex
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // Read to the end: the table is as long as the machine's socket list, and
            // Foundation's String(contentsOfFile:) stops a /proc file after its first 4 KiB.
            guard let bytes = try? LocalFile.read(table, limit: tableLimit) else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                let fields = line.split(whereSeparator: \.isWhitespace)
                guard fields.count > 9, fields[1].hasSuffix(suffix), fields[3] == "0A" else { continue }
                return String(fields[9])
            }
        }
        return nil
    }
}
