import Logging
import ConclaveClient
import ConclaveLoad
import ConclaveRelay

/// The relay configuration of the tests: cheap Argon2id, a short shutdown grace,
/// loopback, ephemeral ports.
public func testRelayConfiguration(_ tweak: (inout RelayConfiguration) -> Void = { _ in }) -> RelayConfiguration {
    var c = RelayConfiguration()
    c.port = 0
    // Media on its own ephemeral port: the control port's number may be taken for UDP by
    // another test's socket (it was, once: "Address already in use").
    c.mediaPort = 0
    c.passwordHashing = .minimum
    // Every test client comes from 127.0.0.1; the tests of per-address limits lower this.
    c.roomCreationsPerAddressPerMinute = 100_000
    c.shutdownGraceSeconds = 1
    // A test process runs dozens of suites at once on two cores: a client task may wait
    // seconds for a thread. The tests of the handshake deadline set their own.
    c.handshakeTimeoutSeconds = 60
    tweak(&c)
    return c
}

/// Runs `body` against a live relay in this process, in the manner of Hummingbird's
/// `LiveTestFramework`: the relay is started and listening (its port bound) before
/// `body` runs, and is shut down gracefully, and awaited, whether `body` returns or throws.
public func withRelay<T>(
    _ configuration: RelayConfiguration = testRelayConfiguration(), clock: any RelayClock = MonotonicRelayClock(),
    _ body: (RelayServer, RelayEndpoint) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test.relay")
    logger.logLevel = .warning
    let server = try RelayServer(configuration: configuration, logger: logger, clock: clock)
    try await server.start()
    guard let port = server.port else {
        await server.shutdown()
        throw TestTimeout(what: "the relay's listening port")
    }
    let endpoint = RelayEndpoint(scheme: configuration.isTLS ? .wss : .ws, host: configuration.isTLS ? "localhost" : "127.0.0.1", port: port)
    do {
        let result = try await body(server, endpoint)
        await server.shutdown()
        return result
    } catch {
        await server.shutdown()
        throw error
    }
}

/// GET http://127.0.0.1:port/path on a relay; (status, body).
public func httpGet(port: Int, path: String, timeout: Duration = .seconds(2)) async throws -> (Int, String) {
    let response = try await PlainHTTP.get(port: port, path: path, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
    return (response.status, response.body)
}
