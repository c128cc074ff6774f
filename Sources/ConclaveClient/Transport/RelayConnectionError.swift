import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Why connecting to, or talking to, a relay failed. Descriptions are one line.
public enum RelayConnectionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No TCP connection could be made (refused, unreachable, or the name did not resolve).
    case unreachable(host: String, port: Int, underlying: String)
    /// The TLS handshake failed (untrusted certificate, wrong name, protocol error), or the
    /// TLS settings could not be loaded.
    case tlsFailure(String)
    /// The server answered the WebSocket upgrade request with this HTTP status instead of
    /// `101 Switching Protocols`, or with a `101` whose WebSocket headers were wrong.
    case upgradeRejected(status: UInt)
    /// Connecting (TCP, TLS and upgrade together) or waiting for an inbound item took longer
    /// than allowed.
    case timeout
    /// The connection is closed or closing; nothing more can be sent.
    case closed

    public var description: String {
        switch self {
        case let .unreachable(host, port, underlying):
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            return "relay \(address) is unreachable: \(underlying)"
        case let .tlsFailure(detail):
            return "TLS failure: \(detail)"
        case let .upgradeRejected(status):
            return "relay rejected the WebSocket upgrade (HTTP \(status))"
        case .timeout:
            return "timed out"
        case .closed:
            return "connection is closed"
        }
    }

    /// Maps an error from connecting or upgrading to a ``RelayConnectionError``.
    ///
    /// Errors of no known kind become `otherwise`.
    static func classify(
        _ error: any Error, endpoint: RelayEndpoint, otherwise: RelayConnectionError = .closed
    ) -> RelayConnectionError {
        switch error {
        case let error as RelayConnectionError:
            return error
        case let error as ChannelError:
            if case .connectTimeout = error { return .timeout }
            return otherwise
        case let error as NIOConnectionError:
            return .unreachable(host: endpoint.host, port: endpoint.port, underlying: describe(error))
        case let error as IOError:
            return .unreachable(host: endpoint.host, port: endpoint.port, underlying: oneLine(error))
        case is NIOSSLError, is NIOSSLExtraError, is BoringSSLError:
            return .tlsFailure(oneLine(error))
        case is NIOHTTPClientUpgradeError:
            return .upgradeRejected(status: HTTPResponseStatus.switchingProtocols.code)
        default:
            return otherwise
        }
    }

    /// The first connection attempt's error, or the DNS error, in one line.
    private static func describe(_ error: NIOConnectionError) -> String {
        if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve host: \(oneLine(dns))" }
        let failures = error.connectionErrors.map { "\($0.target): \(oneLine($0.error))" }
        return failures.isEmpty ? "no addresses to connect to" : failures.joined(separator: "; ")
    }

    /// `String(describing:)` with line breaks folded, so descriptions stay one line.
    static func oneLine(_ error: any Error) -> String {
        String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}
