import Testing
@testable import ConclaveRelay

@Suite struct RelayConfigurationTests {
    @Test func defaultsArePrivacyFriendlyAndLoopback() throws {
        let c = RelayConfiguration()
        #expect(c.host == "127.0.0.1" && c.port == 7443)
        #expect(!c.allowPlaintext && !c.isTLS)
        try c.validate()
        #expect(c.passwordHashing == .interactive)
    }

    @Test func plaintextOnNonLoopbackIsRefusedWithReason() throws {
        var c = RelayConfiguration()
        try c.set("listen", to: "0.0.0.0:7443")
        #expect(throws: RelayConfigurationError.plaintextRefused(host: "0.0.0.0", port: 7443)) { try c.validate() }
        #expect(RelayConfigurationError.plaintextRefused(host: "0.0.0.0", port: 7443).description.contains("--tls-cert"))
        c.allowPlaintext = true
        try c.validate()
        var t = RelayConfiguration()
        try t.set("listen", to: "[::]:443")
        t.tlsCertificatePath = "/c.pem"
        #expect(throws: RelayConfigurationError.tlsIncomplete) { try t.validate() }
        t.tlsKeyPath = "/k.pem"
        try t.validate()
        #expect(t.host == "::" && t.port == 443)
    }

    @Test func fileEnvironmentAndFlagsLayer() throws {
        var c = RelayConfiguration()
        try c.applyJSONFile(contents: Array(#"{"max-rooms": 12, "log-level": "debug", "allow-plaintext": false, "tls-cert": null}"#.utf8), path: "c.json")
        #expect(c.maxRooms == 12 && c.logLevel == .debug)
        try c.applyEnvironment(["CONCLAVE_RELAY_MAX_ROOMS": "13", "CONCLAVE_RELAY_IDLE_TIMEOUT_SECONDS": "5", "UNRELATED": "x"])
        #expect(c.maxRooms == 13 && c.idleTimeoutSeconds == 5)
        try c.set("max-rooms", to: "14")
        #expect(c.maxRooms == 14)
    }

    @Test func badValuesAreClearErrors() {
        var c = RelayConfiguration()
        #expect(throws: RelayConfigurationError.unknownOption("max-roomz")) { try c.set("max-roomz", to: "1") }
        #expect(throws: RelayConfigurationError.self) { try c.set("max-rooms", to: "0") }
        #expect(throws: RelayConfigurationError.self) { try c.set("max-rooms", to: "ten") }
        #expect(throws: RelayConfigurationError.self) { try c.set("listen", to: "nohost") }
        #expect(throws: RelayConfigurationError.self) { try c.set("listen", to: "h:70000") }
        #expect(throws: RelayConfigurationError.self) { try c.set("log-level", to: "loud") }
        #expect(throws: RelayConfigurationError.self) { try c.applyJSONFile(contents: Array(#"{"max-rooms": [1]}"#.utf8), path: "c.json") }
        #expect(throws: RelayConfigurationError.self) { try c.applyJSONFile(contents: Array(#"{"max-rooms": 1"#.utf8), path: "c.json") }
        #expect(throws: RelayConfigurationError.self) { try c.applyJSONFile(contents: Array(#"["x"]"#.utf8), path: "c.json") }
        #expect(throws: RelayConfigurationError.self) { try c.applyJSONFile(contents: [UInt8](repeating: 32, count: 1_048_577), path: "big.json") }
        let e = RelayConfigurationError.invalidValue(option: "max-rooms", value: "ten", expected: "an integer")
        #expect(e.description.contains("max-rooms") && e.description.contains("ten"))
    }

    @Test func everyOptionIsDocumentedAndRoundTrips() throws {
        let names = RelayConfiguration.options.map(\.name)
        #expect(Set(names).count == names.count)
        for option in RelayConfiguration.options { #expect(!option.help.isEmpty) }
        // Setting each option to its current value is accepted.
        var c = RelayConfiguration()
        for (name, value) in c.summary where value != "none" { try c.set(name, to: value) }
        #expect(c == RelayConfiguration())
    }

    /// Fuzzing (FuzzRelayConfig) found a `media-listen` host of control characters and
    /// brackets that was accepted and did not survive being written back.
    @Test func hostsAreHostnamesOrAddresses() throws {
        var c = RelayConfiguration()
        for bad in ["+[\u{0}\u{0}\u{e}A::1]:9001", "a b:1", "[::1:1", "[]:1", "x]:1", "host\n:1", "[a]b:1"] {
            #expect(throws: RelayConfigurationError.self, "\(bad.debugDescription)") { try c.set("media-listen", to: bad) }
            #expect(throws: RelayConfigurationError.self, "\(bad.debugDescription)") { try c.set("listen", to: bad) }
        }
        #expect(
            throws: RelayConfigurationError.invalidValue(
                option: "media-listen", value: "a b:1",
                expected: "HOST:PORT: a host name, an IPv4 address or a bracketed IPv6 address, and a port from 0 to 65535")
        ) {
            try c.set("media-listen", to: "a b:1")
        }
        for good in ["127.0.0.1:0", "[::1]:7443", "relay.example.org:443", "localhost:65535", "[fe80::1%eth0]:1"] {
            try c.set("media-listen", to: good)
            let written = try #require(c.summary.first { $0.name == "media-listen" }).value
            var again = RelayConfiguration()
            try again.set("media-listen", to: written)
            #expect(again == c, "\(good) -> \(written)")
        }
    }
}
