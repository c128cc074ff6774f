import ConclaveCrypto
import ConclaveProtocol
import NIOCore
import NIOPosix

/// The first exchange with the relay: HELLO/WELCOME, then CREATE_ROOM or JOIN with the
/// identity proof over the relay's challenge (section 5.4).
public enum RelayHandshake {
    /// Connects and completes HELLO/WELCOME; returns the connection and the challenge.
    /// `eventLoop`: where the connection runs (nil: the next loop of ``ParticipantEventLoops``).
    public static func open(
        _ endpoint: RelayEndpoint, tls: ClientTLS?, timeout: Duration = .seconds(5), eventLoop: (any EventLoop)? = nil
    ) async throws(SessionError) -> (RelayConnection, [UInt8]) {
        let connection: RelayConnection
        do {
            connection = try await RelayConnection.connect(
                to: endpoint, tls: endpoint.usesTLS ? (tls ?? .system) : nil,
                eventLoopGroup: eventLoop ?? ParticipantEventLoops.group.next(), connectTimeout: timeout)
        } catch let error as RelayConnectionError {
            throw .relayUnreachable(error.description)
        } catch {
            throw .relayUnreachable("\(error)")
        }
        do {
            // A relay at its connection limit answers the upgrade with ERROR at_capacity and
            // closes at once, so the HELLO may fail to send: what arrived is read either way.
            try? await connection.send(.hello(HelloMessage()))
            let welcome = try await expect(connection, "WELCOME", timeout: timeout) {
                if case .welcome(let w) = $0 { return w }; return nil
            }
            return (connection, welcome.challenge)
        } catch let error as SessionError {
            await connection.close()
            throw error
        } catch {
            await connection.close()
            throw .relayUnreachable("\(error)")
        }
    }

    /// Most `REDIRECT`s followed for one `CREATE_ROOM` or `JOIN` (5.10).
    public static let maximumRedirects = 3

    /// Opens a connection, sends the request that `request` builds from the relay's
    /// challenge (`CREATE_ROOM` or `JOIN`), and waits for an answer `pick` accepts. A
    /// `REDIRECT` (5.10) closes the connection and repeats all of it at the named node, with
    /// a new challenge and so a new signature; the request is otherwise the same. Returns
    /// the connection, the answer, and the endpoint that gave it.
    public static func enter<T>(
        _ endpoint: RelayEndpoint, tls: ClientTLS?, what: String, timeout: Duration = .seconds(10), eventLoop: (any EventLoop)? = nil,
        request: ([UInt8]) throws -> ClientMessage,
        pick: @escaping (RelayMessage) -> T?
    ) async throws -> (RelayConnection, T, RelayEndpoint) {
        var current = endpoint
        var hops = 0
        while true {
            let (connection, challenge) = try await open(current, tls: tls, eventLoop: eventLoop)
            let answer: HandshakeAnswer<T>
            do {
                try await connection.send(request(challenge))
                answer = try await expect(connection, what, timeout: timeout) { m -> HandshakeAnswer<T>? in
                    if case .redirect(let r) = m { return .redirect(r) }
                    return pick(m).map { .done($0) }
                }
            } catch {
                await connection.close()
                throw error
            }
            switch answer {
            case .done(let value):
                return (connection, value, current)
            case .redirect(let redirect):
                await connection.close()
                hops += 1
                current = try next(after: current, redirect, hops: hops)
            }
        }
    }

    /// Where a `REDIRECT` leads, or why it is refused: another scheme, or too many hops.
    static func next(after current: RelayEndpoint, _ redirect: RedirectMessage, hops: Int) throws(SessionError) -> RelayEndpoint {
        guard hops <= maximumRedirects else {
            throw .relayUnreachable("more than \(maximumRedirects) redirects; the relay cluster is misconfigured or hostile")
        }
        guard let parts = RedirectMessage.parseOrigin(redirect.origin.utf8), parts.secure == current.usesTLS else {
            throw .relayUnreachable("a redirect to \(redirect.origin) would change the connection's scheme; refused")
        }
        return RelayEndpoint(scheme: parts.secure ? .wss : .ws, host: parts.host, port: parts.port)
    }

    /// The signature proving possession of `identity` (5.4).
    public static func proof(identity: PrivateIdentity, challenge: [UInt8], room: RoomID) throws -> [UInt8] {
        let id = identity.publicIdentity
        return try identity.signingKey.signature(
            for: challenge + room.bytes + id.signingKey.rawRepresentation + id.agreementKey.rawRepresentation,
            context: Labels.relayAuthSignature)
    }

    /// Waits for a message `pick` accepts; a fatal ERROR or a close first ends with `refused`.
    public static func expect<T>(
        _ connection: RelayConnection, _ what: String, timeout: Duration,
        _ pick: (RelayMessage) -> T?
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw SessionError.timeout(what) }
            let item: RelayInbound?
            do { item = try await connection.next(timeout: remaining) } catch RelayConnectionError.timeout { throw SessionError.timeout(what) }
            switch item {
            case .message(let m)?:
                if let value = pick(m) { return value }
                if case .error(let e) = m, e.isFatal { throw SessionError.refused(e.code, e.message) }
            case .undecodable(_, let error)?:
                throw SessionError.protocolViolation(error.description)
            case .closed?, nil:
                throw SessionError.relayUnreachable("the relay closed the connection while waiting for \(what)")
            }
        }
    }
}

/// What answered a `CREATE_ROOM` or `JOIN`: the expected message, or a `REDIRECT`.
enum HandshakeAnswer<T> {
    case done(T)
    case redirect(RedirectMessage)
}

/// The event loops participants run on by default: one per core, apart from NIO's shared
/// group. A relay in the same process (the tests', a demo's) keeps its own loops, so the
/// participants' session work (opening frames, sealing, rekeying) never queues behind
/// the relay's forwarding on one thread, nor the other way round.
public enum ParticipantEventLoops {
    public static let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
}
