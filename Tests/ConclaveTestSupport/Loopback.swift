import NIOCore
import NIOPosix

/// Loopback ports for test servers.
public enum LoopbackPort {
    /// A loopback TCP port nothing listens on now (bound, read and released).
    public static func free() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    /// Waits until something accepts on the port: a connect attempt every 20 ms, without
    /// blocking a thread, up to `within`; throws ``TestTimeout`` after.
    public static func waitUntilAccepting(_ port: Int, within: Duration) async throws {
        let accepted = await eventually(within: within) {
            guard
                let ch = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.milliseconds(500))
                    .connect(host: "127.0.0.1", port: port).get()
            else { return false }
            try? await ch.close()
            return true
        }
        guard accepted else { throw TestTimeout(what: "a listener on 127.0.0.1:\(port) (\(within))") }
    }
}
