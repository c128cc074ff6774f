import Testing
import Synchronization
import NIOCore
import NIOEmbedded
import ConclaveProtocol
import ConclaveTestSupport
@testable import ConclaveRelay

/// The relay's registry as a state machine: driven input by input, without sockets, a
/// clock or the system's randomness. Each input's actions are checked as values.
@Suite struct RelayRegistryTests {
    static let hostAddress = "192.0.2.1"

    /// A registry with a fixed random stream, a clock moved by hand and outboxes on
    /// embedded channels (nothing is written: actions are only inspected).
    struct Fixture {
        var registry: RelayRegistry
        let clock = ManualRelayClock(RelayInstant(nanoseconds: 5_000_000_000))
        let metrics = RelayMetrics()
        var configuration: RelayConfiguration

        init(configure: (inout RelayConfiguration) -> Void = { _ in }, random: RelayRandom = Fixture.seeded(7)) {
            var c = RelayConfiguration()
            configure(&c)
            configuration = c
            registry = RelayRegistry(configuration: c, random: random)
        }

        static func seeded(_ seed: UInt64) -> RelayRandom {
            let generator = Mutex(SplitMix64(seed: seed))
            return RelayRandom { n in generator.withLock { $0.bytes(n) } }
        }

        var now: RelayInstant { clock.now }

        mutating func connect(_ address: String = RelayRegistryTests.hostAddress) throws -> ConnectionOutbox {
            #expect(registry.accept(address: address) == nil)
            let metrics = self.metrics, c = configuration
            return try #require(
                registry.register(address: address) { id in
                    ConnectionOutbox(
                        id: id, channel: EmbeddedChannel(), address: address, metrics: metrics,
                        mediaLimit: c.outboundMediaQueueBytes, hardLimit: c.outboundQueueBytes)
                })
        }

        mutating func create(
            _ room: RoomID = PolicyFixtures.roomID, by outbox: ConnectionOutbox,
            settings: RoomSettings = PolicyFixtures.settings(waitingRoom: false)
        ) -> RelayRegistry.Actions {
            registry.createRoom(
                CreateRoomMessage(
                    roomID: room, identity: PolicyFixtures.owner, signature: [UInt8](repeating: 0, count: 64),
                    relayAuth: nil, settings: settings), passwordHash: nil, outbox: outbox, now: now)
        }

        mutating func join(_ outbox: ConnectionOutbox, room: RoomID = PolicyFixtures.roomID, seed: UInt8) -> RelayRegistry.Actions {
            registry.join(
                JoinMessage(
                    roomID: room, identity: PolicyFixtures.identity(seed), signature: [UInt8](repeating: 0, count: 64),
                    relayAuth: nil, knock: PolicyFixtures.knock), outbox: outbox, now: now)
        }
    }

    /// "connection:MESSAGE_TYPE", "connection:close(code)" or "connection:release".
    static func summary(_ actions: RelayRegistry.Actions) -> [String] {
        actions.deliveries.map { d in
            switch d.action {
            case .message(let m): "\(d.outbox.id.rawValue):\(m.type)"
            case .close(let e): "\(d.outbox.id.rawValue):close(\(e.code.name))"
            case .release: "\(d.outbox.id.rawValue):release"
            }
        }
    }

    @Test func acceptCountsPendingThenTheReserveThenRefuses() throws {
        var f = Fixture {
            $0.maxConnections = 2; $0.maxPendingConnectionsPerAddress = 1; $0.exemptAddresses = ["127.0.0.1"]
        }
        #expect(f.registry.accept(address: "10.0.0.1") == nil)
        // One pending per address: a second from it is refused, another address is not.
        #expect(f.registry.accept(address: "10.0.0.1") == .addressCap)
        // Exempt addresses have no per-address cap (but count against the total).
        #expect(f.registry.accept(address: "127.0.0.1") == nil)
        #expect(f.registry.gauges.pending == 2)
        // Full: the next ones may upgrade to hear `at_capacity`, up to the reserve.
        for _ in 0..<RelayRegistry.refusalReserve { #expect(f.registry.accept(address: "10.0.0.9") == .refuseAfterUpgrade) }
        #expect(f.registry.accept(address: "10.0.0.9") == .atCapacity)
        f.registry.refusalEnded()
        #expect(f.registry.accept(address: "10.0.0.9") == .refuseAfterUpgrade)
        // A pending connection that closes frees its slot, once (idempotent per address).
        f.registry.pendingEnded(address: "10.0.0.1")
        f.registry.pendingEnded(address: "10.0.0.1")
        #expect(f.registry.gauges.pending == 1)
        #expect(f.registry.gauges.connections == 1)
    }

    @Test func registerTakesThePendingSlotAndNumbersConnections() throws {
        var f = Fixture()
        let a = try f.connect(), b = try f.connect()
        #expect(a.id == ConnectionID(1) && b.id == ConnectionID(2))
        #expect(f.registry.gauges == RelayRegistry.Gauges(connections: 2, pending: 0))
        #expect(f.registry.disconnect(a.id, reason: .disconnected, now: f.now).deliveries.isEmpty)
        // Idempotent.
        #expect(f.registry.disconnect(a.id, reason: .disconnected, now: f.now).deliveries.isEmpty)
        #expect(f.registry.connectionCount == 1)
    }

    @Test func aRoomOpensAdmitsAndClosesWhenItsLastMemberLeaves() throws {
        var f = Fixture()
        f.registry.mediaPathBound(.init(advertisedHost: "", port: 9, sockets: []))
        let host = try f.connect(), guest = try f.connect()
        let created = f.create(by: host)
        #expect(Self.summary(created) == ["1:ROOM_CREATED", "1:MEDIA_SESSION"])
        #expect(created.opened?.room == PolicyFixtures.roomID)
        #expect(host.room?.id == PolicyFixtures.roomID)

        let joined = f.join(guest, seed: 9)
        #expect(Self.summary(joined).contains("2:ADMITTED"))
        #expect(Self.summary(joined).contains("2:MEDIA_SESSION"))
        #expect(f.registry.gauges == RelayRegistry.Gauges(connections: 2, pending: 0, rooms: 1, participants: 2, waiting: 0, mediaSessions: 2))
        // The room's cell lists both as recipients (what the frame paths read).
        #expect(host.room?.state.withLock { $0.recipients.map(\.outbox.id) }.sorted() == [host.id, guest.id])

        let guestSession = try #require(f.registry.mediaSession(of: guest.id))
        _ = f.registry.disconnect(guest.id, reason: .disconnected, now: f.now)
        #expect(f.registry.sessions[guestSession.id] == nil)
        #expect(host.room?.state.withLock { _ in guestSession.isOpen } == false)
        #expect(f.registry.gauges.participants == 1)

        let cell = try #require(host.room)
        let last = f.registry.disconnect(host.id, reason: .disconnected, now: f.now)
        // Closed here, not moved: nobody may re-create it elsewhere on the strength of this.
        #expect(last.closed == [.init(id: PolicyFixtures.roomID, mayMove: false)])
        #expect(cell.state.withLock { $0.isClosed && $0.recipients.isEmpty })
        #expect(f.registry.gauges == RelayRegistry.Gauges())
    }

    @Test func createRoomRefusalsAreTypedCloses() throws {
        var f = Fixture { $0.maxRooms = 1 }
        let a = try f.connect(), b = try f.connect(), c = try f.connect()
        _ = f.create(by: a)
        // The same connection again.
        #expect(Self.summary(f.create(RoomID(bytes: [UInt8](repeating: 1, count: 16))!, by: a)) == ["1:close(unexpected_message)"])
        // Over the relay's room limit, counted as a limit hit.
        let full = f.create(RoomID(bytes: [UInt8](repeating: 2, count: 16))!, by: b)
        #expect(Self.summary(full) == ["2:close(too_many_rooms)"])
        #expect(full.limitHits == ["rooms"])
        #expect(full.opened == nil)
        f.configuration.maxRooms = 2
        var g = Fixture { $0.maxRooms = 2 }
        let x = try g.connect(), y = try g.connect()
        _ = g.create(by: x)
        #expect(Self.summary(g.create(by: y)) == ["2:close(room_exists)"])
        _ = c
    }

    @Test func roomSettingsAreClampedToTheRelaysLimits() throws {
        var f = Fixture {
            $0.maxParticipantsPerRoom = 7; $0.maxWaitingPerRoom = 3
        }
        let host = try f.connect()
        let created = f.create(by: host, settings: PolicyFixtures.settings(maxParticipants: 400, maxWaiting: 100))
        guard case .message(.roomCreated(let message)) = try #require(created.deliveries.first).action else {
            Issue.record("expected ROOM_CREATED"); return
        }
        #expect(message.settings.maxParticipants == 7)
        #expect(message.settings.maxWaiting == 3)
    }

    @Test func creationLimitsForgetOnTheInjectedClock() throws {
        var f = Fixture { $0.roomCreationsPerAddressPerMinute = 2 }
        #expect(f.registry.limitRoomCreation(address: "10.0.0.1", now: f.now) == nil)
        #expect(f.registry.limitRoomCreation(address: "10.0.0.1", now: f.now) == nil)
        let retry = f.registry.limitRoomCreation(address: "10.0.0.1", now: f.now)
        #expect(retry == 60_000)
        f.clock.advance(by: .seconds(30))
        #expect(f.registry.limitRoomCreation(address: "10.0.0.1", now: f.now) == 30_000)
        f.clock.advance(by: .milliseconds(30_001))
        _ = f.registry.tick(now: f.now)
        #expect(f.registry.limiterKeyCount == 0)
        #expect(f.registry.limitRoomCreation(address: "10.0.0.1", now: f.now) == nil)
    }

    @Test func joinGateCountsAttemptsAndRefusesUnknownRoomsOnlyOnASingleRelay() throws {
        var f = Fixture { $0.joinAttemptsPerAddressPerMinute = 3 }
        let other = RoomID(bytes: [UInt8](repeating: 3, count: 16))!
        #expect(f.registry.gateJoin(room: other, address: "10.0.0.1", inCluster: false, now: f.now)?.error.code == .roomNotFound)
        // In a cluster the room may live on another node: routed after the proof.
        #expect(f.registry.gateJoin(room: other, address: "10.0.0.1", inCluster: true, now: f.now) == nil)
        #expect(f.registry.gateJoin(room: other, address: "10.0.0.1", inCluster: true, now: f.now) == nil)
        let limited = f.registry.gateJoin(room: other, address: "10.0.0.1", inCluster: true, now: f.now)
        #expect(limited?.error.code == .rateLimited)
        #expect(limited?.limit == "join_attempts")
    }

    @Test func wrongPasswordsPastTheRoomsBudgetAreFlaggedAndForgottenWithTheRoom() throws {
        var f = Fixture {
            $0.passwordFailuresPerRoomPerMinute = 2; $0.passwordFailuresPerAddressPerMinute = 100
        }
        let host = try f.connect()
        _ = f.create(by: host)
        let room = PolicyFixtures.roomID
        #expect(f.registry.recordWrongPassword(address: "10.0.0.1", room: room, now: f.now) == false)
        #expect(f.registry.recordWrongPassword(address: "10.0.0.2", room: room, now: f.now) == true)
        _ = f.registry.disconnect(host.id, reason: .left, now: f.now)
        // The room is gone, and so is its failure count: a new room under the id starts clean.
        let again = try f.connect()
        _ = f.create(by: again)
        #expect(f.registry.recordWrongPassword(address: "10.0.0.3", room: room, now: f.now) == false)
    }

    @Test func shutdownClosesEveryRoomAsMovableAndRefusesNewConnections() throws {
        var f = Fixture()
        let host = try f.connect(), guest = try f.connect(), idle = try f.connect()
        _ = f.create(by: host)
        _ = f.join(guest, seed: 9)
        let actions = f.registry.shutdown(now: f.now)
        #expect(Set(Self.summary(actions)) == ["1:close(shutting_down)", "2:close(shutting_down)", "3:close(shutting_down)"])
        #expect(actions.closed == [.init(id: PolicyFixtures.roomID, mayMove: true)])
        #expect(f.registry.accept(address: "10.0.0.1") == .shuttingDown)
        #expect(f.registry.register(address: "10.0.0.1") { _ in idle } == nil)
    }

    @Test func drainRedirectsEveryClientAndLetsEveryRoomGo() throws {
        var f = Fixture()
        f.registry.mediaPathBound(.init(advertisedHost: "", port: 9, sockets: []))
        let host = try f.connect(), guest = try f.connect(), idle = try f.connect()
        _ = f.create(by: host)
        _ = f.join(guest, seed: 9)
        let cell = try #require(host.room)
        let origin = "wss://127.0.0.1:7444"
        let actions = f.registry.drain(redirectTo: origin)
        for outbox in [host, guest, idle] {
            let mine = actions.deliveries.filter { $0.outbox === outbox }
            #expect(mine.count == 2)
            guard mine.count == 2, case .message(.redirect(let r)) = mine[0].action, case .release = mine[1].action else {
                Issue.record("expected REDIRECT then a normal close for \(outbox.id)"); continue
            }
            #expect(r.reason == .draining && r.origin == origin)
            #expect(outbox.room == nil)
        }
        #expect(actions.closed == [.init(id: PolicyFixtures.roomID, mayMove: true)])
        #expect(actions.rehomes == 1)
        #expect(cell.state.withLock { $0.isClosed })
        #expect(f.registry.gauges == RelayRegistry.Gauges(connections: 3, pending: 0))
        #expect(f.registry.accept(address: "10.0.0.1") == .shuttingDown)
    }

    @Test func mediaSessionIDsComeFromTheInjectedRandomAndNeverCollide() throws {
        // A generator that repeats its first 4-byte draw: the second session must not
        // reuse the first one's id.
        let draws = Mutex(0)
        let repeating = RelayRandom { n in
            let k = draws.withLock { d -> Int in
                d += 1; return d
            }
            if n == 4 { return k <= 4 ? [0, 0, 0, 42] : [0, 0, 0, UInt8(k)] }
            return [UInt8](repeating: UInt8(truncatingIfNeeded: k), count: n)
        }
        var f = Fixture(random: repeating)
        f.registry.mediaPathBound(.init(advertisedHost: "", port: 9, sockets: []))
        let host = try f.connect(), guest = try f.connect()
        _ = f.create(by: host)
        _ = f.join(guest, seed: 9)
        let a = try #require(f.registry.mediaSession(of: host.id)), b = try #require(f.registry.mediaSession(of: guest.id))
        #expect(a.id == 42)
        #expect(b.id != 42)
        #expect(f.registry.sessions.count == 2)
    }

    @Test func theSameInputsGiveTheSameActions() throws {
        func run() throws -> [String] {
            var f = Fixture()
            f.registry.mediaPathBound(.init(advertisedHost: "", port: 9, sockets: []))
            let host = try f.connect(), guest = try f.connect()
            var out = Self.summary(f.create(by: host)) + Self.summary(f.join(guest, seed: 9))
            out += [f.registry.mediaSession(of: guest.id).map { "session \($0.id)" } ?? "none"]
            return out
        }
        #expect(try run() == run())
    }
}
