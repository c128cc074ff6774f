import ConclaveClient
import Testing

@Suite("Relay endpoint parsing")
struct TransportEndpointTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        let url: String
        let scheme: RelayEndpoint.Scheme
        let host: String
        let port: Int
        let path: String
        var testDescription: String { url }
    }

    static let valid: [Valid] = [
        Valid(url: "ws://127.0.0.1:8080", scheme: .ws, host: "127.0.0.1", port: 8080, path: "/v1"),
        Valid(url: "wss://relay.example.com:8443/v1", scheme: .wss, host: "relay.example.com", port: 8443, path: "/v1"),
        Valid(url: "wss://[::1]:9000/custom/path", scheme: .wss, host: "::1", port: 9000, path: "/custom/path"),
        Valid(url: "ws://localhost", scheme: .ws, host: "localhost", port: 80, path: "/v1"),
        Valid(url: "wss://[2001:db8::7]", scheme: .wss, host: "2001:db8::7", port: 443, path: "/v1"),
        Valid(url: "WSS://Relay.Example:1/x?room=1", scheme: .wss, host: "Relay.Example", port: 1, path: "/x?room=1"),
        Valid(url: "ws://h:65535?q", scheme: .ws, host: "h", port: 65535, path: "/v1?q"),
        Valid(url: "ws://h:2/", scheme: .ws, host: "h", port: 2, path: "/"),
    ]

    @Test("Valid URLs parse into scheme, host, port and path", arguments: valid)
    func validURLs(_ case_: Valid) throws {
        let endpoint = try RelayEndpoint(parsing: case_.url)
        #expect(endpoint.scheme == case_.scheme)
        #expect(endpoint.host == case_.host)
        #expect(endpoint.port == case_.port)
        #expect(endpoint.path == case_.path)
        #expect(endpoint.usesTLS == (case_.scheme == .wss))
        // The description parses back to the same endpoint.
        #expect(try RelayEndpoint(parsing: endpoint.description) == endpoint)
    }

    struct Invalid: Sendable, CustomTestStringConvertible {
        let url: String
        let error: RelayEndpointParseError
        var testDescription: String { url.isEmpty ? "(empty)" : url }
    }

    static let invalid: [Invalid] = [
        Invalid(url: "", error: .missingScheme),
        Invalid(url: "relay.example:443", error: .missingScheme),
        Invalid(url: "http://relay.example:80", error: .unsupportedScheme("http")),
        Invalid(url: "://relay.example", error: .unsupportedScheme("")),
        Invalid(url: "ws://", error: .missingHost),
        Invalid(url: "ws://:8080", error: .missingHost),
        Invalid(url: "ws://h:0", error: .invalidPort("0")),
        Invalid(url: "ws://h:65536", error: .invalidPort("65536")),
        Invalid(url: "ws://h:", error: .invalidPort("")),
        Invalid(url: "ws://h:80a", error: .invalidPort("80a")),
        Invalid(url: "ws://h:+80", error: .invalidPort("+80")),
        Invalid(url: "ws://[::1", error: .invalidHost("[::1")),
        Invalid(url: "ws://[::1]x:80", error: .invalidHost("[::1]x:80")),
        Invalid(url: "ws://[127.0.0.1]:80", error: .invalidHost("127.0.0.1")),
        Invalid(url: "ws://[fe80::1%25eth0]:80", error: .invalidHost("fe80::1%25eth0")),
        Invalid(url: "ws://fe80::1", error: .invalidPort(":1")),
        Invalid(url: "ws://re$lay:80", error: .invalidHost("re$lay")),
        Invalid(url: "ws://user@relay:80", error: .userInfoNotAllowed),
        Invalid(url: "ws://relay:80/v1#top", error: .fragmentNotAllowed),
        Invalid(url: "ws://re lay:80", error: .containsWhitespace),
    ]

    @Test("Invalid URLs fail with the matching typed error", arguments: invalid)
    func invalidURLs(_ case_: Invalid) {
        #expect(throws: case_.error) { try RelayEndpoint(parsing: case_.url) }
        #expect(!case_.error.description.contains("\n"))
    }

    @Test("Host header, bracketed host and IP detection")
    func derivedValues() throws {
        let v6 = try RelayEndpoint(parsing: "wss://[::1]:8443")
        #expect(v6.hostHeader == "[::1]:8443")
        #expect(v6.description == "wss://[::1]:8443/v1")
        #expect(v6.hostIsIPAddress)
        #expect(try RelayEndpoint(parsing: "ws://10.0.0.1:1").hostIsIPAddress)
        #expect(try !RelayEndpoint(parsing: "ws://localhost:1").hostIsIPAddress)
        #expect(RelayEndpoint(scheme: .wss, host: "relay.example").port == 443)
        #expect(RelayEndpoint.defaultPath == "/v1")
    }
}
