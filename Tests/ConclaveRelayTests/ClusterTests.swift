import Foundation
import Logging
import Testing
import ConclaveTestSupport
@testable import ConclaveClient
import ConclaveCrypto
import ConclaveProtocol
@testable import ConclaveRelay

/// Relays as a cluster on a real `redis-server` (issue 12), all on loopback.
struct TestCluster {
    let redis: RedisServerProcess
    let servers: [RelayServer]
    var endpoints: [RelayEndpoint] { servers.map { RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: $0.port!) } }
}

/// Starts Redis and `nodes` relays sharing it, waits until every node sees every other,
/// runs `body`, and always shuts everything down.
func withCluster<T>(nodes: Int = 3, _ body: (TestCluster) async throws -> T) async throws -> T {
    let redis = try RedisServerProcess()
    let keyPath = NSTemporaryDirectory() + "conclave-cluster-key-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: keyPath, contents: Data(SecureRandom.bytes(count: 32)))
    defer { try? FileManager.default.removeItem(atPath: keyPath) }
    var logger = Logger(label: "test.cluster")
    logger.logLevel = .warning
    var servers: [RelayServer] = []
    func stopAll() async { for s in servers { await s.shutdown() } }
    do {
        for i in 1 ... nodes {
            let c = testRelayConfiguration { c in
                c.clusterRedisURL = redis.url
                c.nodeID = "n\(i)"
                c.clusterKeyFile = keyPath
                c.clusterNodeTimeoutSeconds = 2
            }
            let server = try RelayServer(configuration: c, logger: logger)
            try await server.start()
            servers.append(server)
        }
        let all = servers
        try await waitFor("every node to see \(nodes) nodes", within: .seconds(10)) {
            all.allSatisfy { $0.clusterNodeIDs.count == nodes }
        }
        let result = try await body(TestCluster(redis: redis, servers: servers))
        await stopAll()
        return result
    } catch {
        await stopAll()
        throw error
    }
}

/// Waits for `condition` with a deadline; throws ``TestTimeout`` when it does not come.
func waitFor(_ what: String, within: Duration, _ condition: () async throws -> Bool) async throws {
    guard try await eventually(within: within, condition) else { throw TestTimeout(what: what) }
}

@Suite(.serialized, .timeLimit(.minutes(3))) struct ClusterTests {
    let quiet = EventOutput(json: true) { _ in }

    private func options(_ name: String) -> ParticipantOptions {
        var o = ParticipantOptions(displayName: name)
        o.audioSource = .tone(frequency: 440)
        o.unmuteOnJoin = true
        o.autoAdmit = true
        return o
    }

    @Test func roomsSpreadOverTheNodes() async throws {
        try await withCluster { cluster in
            // Six hosts, all given node 1: placement sends them over the three nodes.
            var hosts: [Participant] = []
            for i in 0 ..< 6 {
                hosts.append(try await Participant.host(relay: cluster.endpoints[0], password: nil, settings: .privacyDefaults,
                                                        options: ParticipantOptions(displayName: "h\(i)"), output: quiet))
            }
            let counts = cluster.servers.map(\.roomCount)
            #expect(counts.reduce(0, +) == 6)
            #expect(counts.allSatisfy { $0 >= 1 }, "rooms per node: \(counts)")
            // The registry reports the load: every node sees 6 participants in all.
            try await waitFor("the registry to report the rooms", within: .seconds(5)) {
                cluster.servers.map(\.participantCount).reduce(0, +) == 6
            }
            _ = hosts
        }
    }

    /// A joiner whose invite names node 1, for a room placed on node 2, is redirected there,
    /// with a password (relay_auth stays bound to the invite's origin); audio and chat
    /// decrypt both ways and the security codes match.
    @Test func aClientSentToTheWrongNodeIsRedirectedAndTheMeetingWorks() async throws {
        try await withCluster { cluster in
            let entry = cluster.endpoints[0]
            // The first room takes node 1 (the least-loaded, lowest id); the next goes elsewhere.
            let first = try await Participant.host(relay: entry, password: nil, settings: .privacyDefaults, options: ParticipantOptions(displayName: "first"), output: quiet)
            #expect(cluster.servers[0].roomCount == 1)
            let host = try await Participant.host(relay: entry, password: "correct horse", settings: .privacyDefaults, options: options("host"), output: quiet)
            let invite = try #require(await host.invite)
            #expect(invite.port == entry.port, "the invite names the node the host was given")
            let owner = try #require(cluster.servers.firstIndex { $0.roomCount == 1 && $0 !== cluster.servers[0] })
            let guest = try await Participant.join(invite: invite, options: options("guest"), output: quiet)
            async let h: Void = host.run(for: .seconds(3))
            async let g: Void = guest.run(for: .seconds(3))
            // Admitted (out of the waiting room) on the room's node.
            let server = cluster.servers[owner]
            try await waitFor("the guest's admission on the room's node", within: .seconds(3)) { server.participantCount == 2 }
            try await waitFor("the guest's first security code", within: .seconds(3)) { await guest.securityCodes.last != nil }
            try await host.say("over the redirect")
            try await guest.say("and back")
            _ = await (h, g)
            for p in [host, guest] {
                let c = await p.receiveCounters
                #expect(c.opened + c.openedFromBuffer > 40, "decrypted only \(c.opened) frames")
                #expect(c.decryptFailed == 0 && c.noKey == 0)
            }
            #expect(await guest.chatLog.contains { $0.text == "over the redirect" })
            #expect(await host.chatLog.contains { $0.text == "and back" })
            let codes = (await host.securityCodes.last, await guest.securityCodes.last)
            #expect(codes.0 != nil && codes.0 == codes.1)
            var bytes: [UInt8] = []
            cluster.servers[0].metrics.registry.emit(into: &bytes)
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.contains("conclave_cluster_redirects_total"), "no redirect counter")
            #expect(!text.contains("conclave_cluster_redirects_total 0\n"), "node 1 counted no redirect")
            _ = first
        }
    }

    /// Someone else proposing an existing room's id, at a node that does not serve it, is
    /// refused (`room_exists`): the owner record is checked before any placement.
    @Test func anotherIdentityCannotClaimAnExistingRoomIDAtAnotherNode() async throws {
        try await withCluster { cluster in
            let host = try await Participant.host(relay: cluster.endpoints[0], password: nil, settings: .privacyDefaults,
                                                  options: ParticipantOptions(displayName: "host"), output: quiet)
            let roomID = try #require(await host.invite?.roomID)
            let servedBy = try #require(cluster.servers.firstIndex { $0.roomCount == 1 })
            let other = (servedBy + 1) % 3
            let stranger = try await TestParticipant.connect(cluster.endpoints[other])
            try await stranger.connection.send(.createRoom(CreateRoomMessage(
                roomID: roomID, identity: stranger.identity.publicIdentity.wireIdentity,
                signature: try stranger.proof(room: roomID), relayAuth: nil, settings: .privacyDefaults)))
            try await stranger.expectFatal(.roomExists)
            #expect(cluster.servers.map(\.roomCount).reduce(0, +) == 1)
            _ = host
        }
    }

    @Test func clientRedirectRules() throws {
        let ws = RelayEndpoint(scheme: .ws, host: "127.0.0.1", port: 7001)
        let next = try RelayHandshake.next(after: ws, RedirectMessage(reason: .elsewhere, origin: "ws://[::1]:7002"), hops: 1)
        #expect(next == RelayEndpoint(scheme: .ws, host: "::1", port: 7002))
        #expect(throws: SessionError.self) { try RelayHandshake.next(after: ws, RedirectMessage(reason: .elsewhere, origin: "wss://h:1"), hops: 1) }
        let wss = RelayEndpoint(scheme: .wss, host: "h", port: 443)
        #expect(throws: SessionError.self) { try RelayHandshake.next(after: wss, RedirectMessage(reason: .draining, origin: "ws://h:1"), hops: 1) }
        #expect(throws: SessionError.self) { try RelayHandshake.next(after: ws, RedirectMessage(reason: .elsewhere, origin: "ws://h:1"), hops: 4) }
    }
}
