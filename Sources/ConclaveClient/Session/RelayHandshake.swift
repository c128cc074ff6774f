import ConclaveCrypto
import ConclaveProtocol

/// The first exchange with the relay: HELLO/WELCOME, then CREATE_ROOM or JOIN with the
/// identity proof over the relay's challenge (section 5.4).
public enum RelayHandshake {
    /// Connects and completes HELLO/WELCOME; returns the connection and the challenge.
    public static func open(_ endpoint: RelayEndpoint, tls: ClientTLS?, timeout: Duration = .seconds(5)) async throws(SessionError) -> (RelayConnection, [UInt8]) {
        let connection: RelayConnection
        do {
            connection = try await RelayConnection.connect(to: endpoint, tls: endpoint.usesTLS ? (tls ?? .system) : nil, connectTimeout: timeout)
        } catch let error as RelayConnectionError {
            throw .relayUnreachable(error.description)
        } catch {
            throw .relayUnreachable("\(error)")
        }
        do {
            // A relay at its connection limit answers the upgrade with ERROR at_capacity and
            // closes at once, so the HELLO may fail to send: what arrived is read either way.
            try? await connection.send(.hello(HelloMessage()))
            let welcome = try await expect(connection, "WELCOME", timeout: timeout) { if case .welcome(let w) = $0 { return w }; return nil }
            return (connection, welcome.challenge)
        } catch let error as SessionError {
            await connection.close()
            throw error
        } catch {
            await connection.close()
            throw .relayUnreachable("\(error)")
        }
    }

    /// The signature proving possession of `identity` (5.4).
    public static func proof(identity: PrivateIdentity, challenge: [UInt8], room: RoomID) throws -> [UInt8] {
        let id = identity.publicIdentity
        return try identity.signingKey.signature(for: challenge + room.bytes + id.signingKey.rawRepresentation + id.agreementKey.rawRepresentation,
                                                 context: Labels.relayAuthSignature)
    }

    /// Waits for a message `pick` accepts; a fatal ERROR or a close first ends with `refused`.
    public static func expect<T>(_ connection: RelayConnection, _ what: String, timeout: Duration,
                                 _ pick: (RelayMessage) -> T?) async throws -> T {
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
