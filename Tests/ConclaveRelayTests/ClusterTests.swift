import ConclaveChildProcess
import Foundation
import Logging
import Testing
import ConclaveTestSupport
import ConclaveRedis
import NIOPosix
import NIOCore
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
    let redis = try await RedisServerProcess.launch()
    let keyPath = makeClusterKeyFile()
    defer { try? FileManager.default.removeItem(atPath: keyPath) }
    var logger = Logger(label: "test.cluster")
    logger.logLevel = .warning
    var servers: [RelayServer] = []
    func stopAll() async { for s in servers { await s.shutdown() } }
    do {
        for i in 1...nodes {
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
        try await waitUntil("every node to see \(nodes) nodes", within: .seconds(10)) {
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

@Suite(.serialized, .timeLimit(.minutes(3)), .tags(.integration), .live) struct ClusterTests {
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
            for i in 0..<6 {
                hosts.append(
                    try await Participant.host(
                        relay: cluster.endpoints[0], password: nil, settings: .privacyDefaults,
                        options: ParticipantOptions(displayName: "h\(i)"), output: quiet))
            }
            let counts = cluster.servers.map(\.roomCount)
            #expect(counts.reduce(0, +) == 6)
            #expect(counts.allSatisfy { $0 >= 1 }, "rooms per node: \(counts)")
            // The registry reports the load: every node sees 6 participants in all.
            try await waitUntil("the registry to report the rooms", within: .seconds(5)) {
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
            let first = try await Participant.host(
                relay: entry, password: nil, settings: .privacyDefaults, options: ParticipantOptions(displayName: "first"), output: quiet)
            #expect(cluster.servers[0].roomCount == 1)
            let host = try await Participant.host(relay: entry, password: "correct horse", settings: .privacyDefaults, options: options("host"), output: quiet)
            let invite = try #require(await host.invite)
            #expect(invite.port == entry.port, "the invite names the node the host was given")
            let owner = try #require(cluster.servers.firstIndex { $0.roomCount == 1 && $0 !== cluster.servers[0] })
            let guest = try await Participant.join(invite: invite, options: options("guest"), output: quiet)
            let hostRun = Task { await host.run(for: .seconds(60)) }
            let guestRun = Task { await guest.run(for: .seconds(60)) }
            // Admitted (out of the waiting room) on the room's node.
            let server = cluster.servers[owner]
            try await waitUntil("the guest's admission on the room's node", within: .seconds(10)) { server.participantCount == 2 }
            try await waitUntil("the guest's first security code", within: .seconds(10)) { await guest.securityCodes.last != nil }
            try await host.say("over the redirect")
            try await guest.say("and back")
            // Both in the room show the same code (compared while both are in it: whoever
            // leaves first makes the other rekey).
            try await waitUntil("the same security code on both", within: .seconds(10)) {
                let hostCode = await host.securityCode, guestCode = await guest.securityCode
                return hostCode != nil && hostCode == guestCode
            }
            // Both chat lines and a second of audio each way (more than the 40 frames checked below).
            try await waitUntil("the chat and 50 frames each way", within: .seconds(20)) {
                guard await guest.chatLog.contains(where: { $0.text == "over the redirect" }),
                    await host.chatLog.contains(where: { $0.text == "and back" })
                else { return false }
                let (h, g) = (await host.receiveCounters, await guest.receiveCounters)
                return h.opened + h.openedFromBuffer > 50 && g.opened + g.openedFromBuffer > 50
            }
            await host.stop(); await guest.stop()
            await hostRun.value
            await guestRun.value
            for p in [host, guest] {
                let c = await p.receiveCounters
                #expect(c.opened + c.openedFromBuffer > 40, "decrypted only \(c.opened) frames")
                #expect(c.decryptFailed == 0 && c.noKey == 0)
            }
            #expect(await guest.chatLog.contains { $0.text == "over the redirect" })
            #expect(await host.chatLog.contains { $0.text == "and back" })
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
            let host = try await Participant.host(
                relay: cluster.endpoints[0], password: nil, settings: .privacyDefaults,
                options: ParticipantOptions(displayName: "host"), output: quiet)
            let roomID = try #require(await host.invite?.roomID)
            let servedBy = try #require(cluster.servers.firstIndex { $0.roomCount == 1 })
            let other = (servedBy + 1) % 3
            let stranger = try await TestParticipant.connect(cluster.endpoints[other])
            try await stranger.connection.send(
                .createRoom(
                    CreateRoomMessage(
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

/// A fresh cluster key in a temporary file (the caller removes it).
func makeClusterKeyFile() -> String {
    let path = NSTemporaryDirectory() + "conclave-cluster-key-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: path, contents: Data(SecureRandom.bytes(count: 32)))
    return path
}

/// Redis and `conclave-relay` processes `PREFIX1`…`PREFIXn` on loopback, each node
/// accepting connections; everything is killed and removed when the value goes away.
final class ProcessCluster: @unchecked Sendable {
    let redis: RedisServerProcess
    let keyPath: String
    private(set) var nodes: [RelayProcess] = []

    private init(redis: RedisServerProcess, keyPath: String) {
        self.redis = redis
        self.keyPath = keyPath
    }

    static func launch(nodes count: Int, prefix: String) async throws -> ProcessCluster {
        let cluster = ProcessCluster(redis: try await RedisServerProcess.launch(), keyPath: makeClusterKeyFile())
        for i in 1...count {
            let node = try await RelayProcess.clusterNode(
                nodeID: "\(prefix)\(i)", redis: cluster.redis.url, keyFile: cluster.keyPath,
                port: try await LoopbackPort.free())
            cluster.nodes.append(node)
        }
        return cluster
    }

    deinit {
        for node in nodes where node.isRunning { node.child.signal(SIGKILL) }
        try? FileManager.default.removeItem(atPath: keyPath)
    }
}

extension RelayProcess {
    /// A cluster node on a port chosen before it starts (so that its advertised origin is
    /// known).
    static func clusterNode(nodeID: String, redis: String, keyFile: String, port: Int) async throws -> RelayProcess {
        try await launch(
            arguments: [
                "--cluster", redis, "--node-id", nodeID, "--cluster-key-file", keyFile,
                "--log-level", "warning", "--set", "password-hashing=minimum", "--set", "cluster-node-timeout-seconds=2",
                "--set", "exempt-addresses=127.0.0.1", "--set", "drain-grace-seconds=5",
            ], port: port)
    }
}

@Suite(.serialized, .timeLimit(.minutes(3)), .tags(.integration), .live) struct ClusterFailoverTests {
    let quiet = EventOutput(json: true) { _ in }

    private func options(_ name: String, fallbacks: [RelayEndpoint]) -> ParticipantOptions {
        var o = ParticipantOptions(displayName: name)
        o.audioSource = .tone(frequency: 440)
        o.unmuteOnJoin = true
        o.failoverWindow = .seconds(20)
        o.fallbackRelays = fallbacks
        return o
    }

    /// A meeting of a host and a guest is on one node of three real `conclave-relay`
    /// processes; that node is killed with SIGKILL. Both get back into the room through
    /// the other nodes (the host re-creating it under the same id, the guest let back in
    /// without a new approval), audio decrypts again under a fresh epoch, and both show the
    /// same security code again. Prints the failover time.
    @Test func aNodeKilledMidMeetingIsSurvived() async throws {
        let cluster = try await ProcessCluster.launch(nodes: 3, prefix: "n")
        defer { withExtendedLifetime(cluster) {} }
        let (redis, nodes) = (cluster.redis, cluster.nodes)
        let all = nodes.map(\.endpoint)
        // Every node is in the registry.
        let probe = RedisClient(
            configuration: RedisClientConfiguration(endpoint: redis.endpoint, commandTimeout: .seconds(10)), group: MultiThreadedEventLoopGroup.singleton)
        probe.start()
        try await waitUntil("three registered nodes", within: .seconds(10)) {
            let values = try await probe.send(RedisCommand("MGET", ["conclave:node:n1", "conclave:node:n2", "conclave:node:n3"])).elements ?? []
            return values.count == 3 && values.allSatisfy { !$0.isNull }
        }
        await probe.shutdown()

        let debug = ProcessInfo.processInfo.environment["CONCLAVE_TEST_DEBUG"] != nil
        func out(_ who: String) -> EventOutput { EventOutput(json: true) { line in if debug { print(who, line) } } }
        let host = try await Participant.host(
            relay: all[0], password: "pw", settings: .privacyDefaults,
            options: options("host", fallbacks: all), output: out("host"))
        let invite = try #require(await host.invite)
        let guest = try await Participant.join(invite: invite, options: options("guest", fallbacks: all), output: out("guest"))
        let hostRun = Task { await host.run(for: .seconds(25)) }
        let guestRun = Task { await guest.run(for: .seconds(25)) }
        defer {
            Task {
                await host.stop(); await guest.stop()
            }
        }
        // The host admits the guest by hand; after the move it must not have to again.
        let guestIndex = await guest.index
        try await waitUntil("the guest's knock at the host", within: .seconds(5)) { await host.hasPendingKnock(guestIndex) }
        try await host.command(.admit(ParticipantIndex(guestIndex)))
        try await waitUntil("the first keys and audio", within: .seconds(8)) {
            let code = await guest.securityCode
            let hostCode = await host.securityCode
            let opened = await guest.receiveCounters.opened
            return code != nil && code == hostCode && opened > 20
        }
        let before = try #require(await host.securityCode)
        let served = try #require(await host.servedBy)
        let victim = try #require(nodes.firstIndex { $0.port == served.port })
        let killed = ContinuousClock.now
        await nodes[victim].kill(SIGKILL)

        try await waitUntil("both back in the room with the same new code and audio", within: .seconds(20)) {
            guard await host.failovers.count == 1, await guest.failovers.count == 1 else { return false }
            let (h, g) = (await host.securityCode, await guest.securityCode)
            guard let h, h == g else { return false }
            let (a, b) = (await host.receiveCounters.opened, await guest.receiveCounters.opened)
            return a > 20 && b > 20
        }
        let total = ContinuousClock.now - killed
        // The same people at the same places: the code people compared still holds (a relay
        // that slipped someone in would change it), under fresh epoch secrets.
        #expect(await host.securityCode == before)
        let movedTo = try #require(await host.servedBy)
        #expect(movedTo.port != served.port)
        #expect(await guest.servedBy?.port == movedTo.port)
        let counters = [await host.receiveCounters, await guest.receiveCounters]
        #expect(counters.allSatisfy { $0.decryptFailed == 0 })
        let (hf, gf) = (await host.failovers, await guest.failovers)
        print(
            "failover: node killed → audio decrypting and codes matching again in \(total); participants' own measure (connection lost → back in the room): host \(hf) ms, guest \(gf) ms"
        )
        #expect(total < .seconds(15))
        await host.stop()
        await guest.stop()
        await hostRun.value
        await guestRun.value
    }
}

extension ClusterFailoverTests {
    /// `conclave-relay --cluster URL --drain ID` from another process: the named node hears
    /// it on the cluster's bus, tells its clients `REDIRECT draining` to another node, and
    /// exits by itself with status 0; the other node keeps running.
    @Test func drainRequestedThroughTheClusterEmptiesAndStopsTheNode() async throws {
        let cluster = try await ProcessCluster.launch(nodes: 2, prefix: "d")
        defer { withExtendedLifetime(cluster) {} }
        let (redis, nodes) = (cluster.redis, cluster.nodes)
        let probe = RedisClient(
            configuration: RedisClientConfiguration(endpoint: redis.endpoint, commandTimeout: .seconds(10)), group: MultiThreadedEventLoopGroup.singleton)
        probe.start()
        try await waitUntil("both nodes registered and subscribed", within: .seconds(10)) {
            let values = try await probe.send(RedisCommand("MGET", ["conclave:node:d1", "conclave:node:d2"])).elements ?? []
            let listeners = try await probe.send(RedisCommand("PUBSUB", ["NUMSUB", "conclave:events"])).elements?.last?.integer ?? 0
            return values.count == 2 && values.allSatisfy { !$0.isNull } && listeners == 2
        }
        await probe.shutdown()
        // A client of node 1, idle after its handshake: it is told where to go.
        let client = try await TestParticipant.connect(nodes[0].endpoint)
        let drain = try await ChildProcess.launch(try TestPaths.executable("conclave-relay"), arguments: ["--cluster", redis.url, "--drain", "d1"])
        let told = try await client.expectMessage("REDIRECT draining", timeout: .seconds(10)) {
            if case .redirect(let r) = $0 { return r.reason == .draining }
            return false
        }
        guard case .redirect(let r)? = told else { Issue.record("no REDIRECT"); return }
        #expect(r.origin == "ws://127.0.0.1:\(nodes[1].port)")
        try await waitUntil("node 1 to exit", within: .seconds(15)) { !nodes[0].isRunning }
        #expect(nodes[0].child.exit == .exited(0))
        #expect(nodes[1].isRunning)
        try await waitUntil("the drain command to finish", within: .seconds(10)) { !drain.isRunning }
        #expect(drain.exit == .exited(0))
    }
}

@Suite(.serialized, .timeLimit(.minutes(3)), .tags(.integration), .live) struct ClusterDrainTests {
    private func options(_ name: String, fallbacks: [RelayEndpoint]) -> ParticipantOptions {
        var o = ParticipantOptions(displayName: name)
        o.audioSource = .tone(frequency: 440)
        o.unmuteOnJoin = true
        o.autoAdmit = true
        o.failoverWindow = .seconds(15)
        o.fallbackRelays = fallbacks
        return o
    }

    /// A host and a guest through `entry`, both running for 20 s, keyed and hearing each other.
    private func meeting(
        through entry: RelayEndpoint, fallbacks: [RelayEndpoint]
    )
        async throws -> (host: Participant, guest: Participant, invite: Invite, runs: [Task<Void, Never>])
    {
        let quiet = EventOutput(json: true) { _ in }
        let host = try await Participant.host(
            relay: entry, password: nil, settings: .privacyDefaults,
            options: options("host", fallbacks: fallbacks), output: quiet)
        let invite = try #require(await host.invite)
        let guest = try await Participant.join(invite: invite, options: options("guest", fallbacks: fallbacks), output: quiet)
        let runs = [Task { await host.run(for: .seconds(20)) }, Task { await guest.run(for: .seconds(20)) }]
        try await waitUntil("keys and audio", within: .seconds(8)) {
            let (a, b) = (await host.receiveCounters.opened, await guest.receiveCounters.opened)
            return a > 20 && b > 20
        }
        return (host, guest, invite, runs)
    }

    /// The meeting's node drains (what SIGTERM does in a cluster): it leaves placement,
    /// tells its clients to move, and empties; the meeting continues on another node.
    @Test func aDrainedNodeEmptiesAndItsMeetingContinuesElsewhere() async throws {
        try await withCluster { cluster in
            let all = cluster.endpoints
            let (host, guest, _, runs) = try await meeting(through: all[0], fallbacks: all)
            let served = try #require(await host.servedBy)
            let drained = try #require(cluster.servers.first { $0.port == served.port })
            await drained.shutdown()
            #expect(drained.connectionCount == 0, "the drained node did not empty")
            #expect(drained.roomCount == 0)
            try await waitUntil("the meeting on another node, audio decrypting", within: .seconds(15)) {
                guard await host.failovers.count == 1, await guest.failovers.count == 1 else { return false }
                let (a, b) = (await host.receiveCounters.opened, await guest.receiveCounters.opened)
                let (h, g) = (await host.securityCode, await guest.securityCode)
                return a > 20 && b > 20 && h != nil && h == g
            }
            let moved = try #require(await host.servedBy)
            #expect(moved.port != served.port)
            let others = cluster.servers.filter { $0 !== drained }
            #expect(others.map(\.roomCount).reduce(0, +) == 1)
            // Counted as a re-home where the room landed.
            let rehomes = others.map { server -> Double in
                var bytes: [UInt8] = []
                server.metrics.registry.emit(into: &bytes)
                return metricValue(String(decoding: bytes, as: UTF8.self), "conclave_cluster_rehomes_total")
            }.reduce(0, +)
            #expect(rehomes == 1)
            await host.stop()
            await guest.stop()
            for r in runs { await r.value }
        }
    }

    /// After a move, the owner's client lets back in only the members of its own last
    /// verified roster: a member it removed before the move is refused when it knocks
    /// again, and a stranger holding the invite waits for a decision. Neither gets a key.
    @Test func aMoveLetsBackOnlyTheOwnersMembers() async throws {
        try await withCluster { cluster in
            let quiet = EventOutput(json: true) { _ in }
            let all = cluster.endpoints
            var hostOptions = options("host", fallbacks: all)
            hostOptions.autoAdmit = false
            let host = try await Participant.host(relay: all[0], password: nil, settings: .privacyDefaults, options: hostOptions, output: quiet)
            let invite = try #require(await host.invite)
            let hostRun = Task { await host.run(for: .seconds(30)) }
            let bobIdentity = PrivateIdentity.generate()
            var members: [Participant] = []
            for (name, identity) in [("alice", PrivateIdentity.generate()), ("bob", bobIdentity)] {
                var o = options(name, fallbacks: all)
                o.identity = identity
                let p = try await Participant.join(invite: invite, options: o, output: quiet)
                let index = await p.index
                try await waitUntil("\(name)'s knock", within: .seconds(5)) { await host.hasPendingKnock(index) }
                try await host.command(.admit(ParticipantIndex(index)))
                members.append(p)
            }
            let (alice, bob) = (members[0], members[1])
            let runs = [Task { await alice.run(for: .seconds(30)) }, Task { await bob.run(for: .seconds(30)) }]
            try await waitUntil("three members keyed", within: .seconds(8)) {
                let codes = [await host.securityCode, await alice.securityCode, await bob.securityCode]
                return codes[0] != nil && codes.allSatisfy { $0 == codes[0] }
            }
            try await host.command(.remove(ParticipantIndex(await bob.index)))
            try await waitUntil("bob removed", within: .seconds(5)) { await bob.endedBy == .removed }

            let served = try #require(await host.servedBy)
            await cluster.servers.first { $0.port == served.port }!.shutdown()
            try await waitUntil("host and alice back, keyed alike", within: .seconds(15)) {
                guard await host.failovers.count == 1, await alice.failovers.count == 1 else { return false }
                let (h, a) = (await host.securityCode, await alice.securityCode)
                return h != nil && h == a
            }
            // Bob comes back with the invite after the move: denied, no key.
            var bobAgain = options("bob", fallbacks: all)
            bobAgain.identity = bobIdentity
            let returning = try await Participant.join(invite: invite, options: bobAgain, output: quiet)
            let returningRun = Task { await returning.run(for: .seconds(60)) }
            try await waitUntil("the removed member refused after the move", within: .seconds(10)) { await returning.endedBy == .denied }
            #expect(await returning.securityCode == nil)
            // A stranger with the invite is not let in by the move: it waits.
            let stranger = try await Participant.join(invite: invite, options: options("stranger", fallbacks: all), output: quiet)
            let strangerIndex = await stranger.index
            try await waitUntil("the stranger's knock at the host", within: .seconds(5)) { await host.hasPendingKnock(strangerIndex) }
            #expect(await stranger.securityCode == nil)
            let roster = await host.leader?.entries.map(\.identity) ?? []
            #expect(!roster.contains(bobIdentity.publicIdentity))
            #expect(roster.count == 2)
            await host.stop(); await alice.stop(); await returning.stop()
            await hostRun.value
            await returningRun.value
            for r in runs { await r.value }
        }
    }

    /// Redis is killed and restarted under a live meeting: frames never touch Redis, so the
    /// meeting goes on; the nodes re-register and re-claim their rooms, and a new joiner
    /// sent to the wrong node is redirected to the room again.
    @Test func aRedisRestartLosesNoLiveMeeting() async throws {
        try await withCluster { cluster in
            let quiet = EventOutput(json: true) { _ in }
            let all = cluster.endpoints
            // Node 1 holds a room first, so the meeting is placed on another node.
            let first = try await Participant.host(
                relay: all[0], password: nil, settings: .privacyDefaults,
                options: ParticipantOptions(displayName: "first"), output: quiet)
            let (host, guest, invite, runs) = try await meeting(through: all[0], fallbacks: all)
            let served = try #require(await host.servedBy)
            #expect(served.port != all[0].port)
            let openedBefore = await guest.receiveCounters.opened
            await cluster.redis.kill()
            try await cluster.redis.start()
            // Every node is back in the (empty) registry, and the room's claim is back.
            let probe = RedisClient(
                configuration: RedisClientConfiguration(endpoint: cluster.redis.endpoint, commandTimeout: .seconds(10)),
                group: MultiThreadedEventLoopGroup.singleton)
            probe.start()
            try await waitUntil("the registry and the claims rebuilt", within: .seconds(10)) {
                let nodes = try await probe.send(RedisCommand("SCARD", ["conclave:nodes"])).integer ?? 0
                let rooms = try await probe.send(RedisCommand("KEYS", ["conclave:room:*"])).elements?.count ?? 0
                return nodes == 3 && rooms == 2
            }
            await probe.shutdown()
            try await waitUntil("audio still flowing", within: .seconds(5)) { (await guest.receiveCounters.opened) > openedBefore + 50 }
            let (hf, gf) = (await host.failovers, await guest.failovers)
            #expect(hf.isEmpty && gf.isEmpty, "the meeting moved although no node failed")
            // A late joiner at the wrong node is redirected to the room.
            let late = try await Participant.join(invite: invite, options: options("late", fallbacks: all), output: quiet)
            #expect(await late.servedBy?.port == served.port)
            _ = first
            await host.stop()
            await guest.stop()
            for r in runs { await r.value }
        }
    }
}
