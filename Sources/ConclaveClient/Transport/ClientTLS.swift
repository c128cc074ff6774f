import NIOSSL

/// How a client checks the relay's TLS certificate on a `wss://` endpoint.
///
/// Verification is always full: the chain must lead to a trusted root and the leaf must
/// name the endpoint's host. For a DNS host that is a DNS SAN (the name is also sent in
/// SNI); for an IP host (`wss://127.0.0.1:…`, `wss://[::1]:…`) no SNI is sent and swift-nio-ssl
/// matches the certificate's IP SANs against the connected peer address.
public struct ClientTLS: Sendable, Hashable {
    /// Where trusted root certificates come from.
    public enum TrustRoots: Sendable, Hashable {
        /// The operating system's default trust store.
        case system
        /// Only the certificates in this PEM file (for a private CA or a self-signed relay).
        case pemFile(path: String)
    }

    /// The roots a relay certificate must chain to.
    public var trustRoots: TrustRoots

    public init(trustRoots: TrustRoots = .system) {
        self.trustRoots = trustRoots
    }

    /// Trust the system's roots.
    public static let system = ClientTLS(trustRoots: .system)

    /// Trust only the CA (or self-signed) certificates in the PEM file at `path`.
    public static func trusting(pemFile path: String) -> ClientTLS {
        ClientTLS(trustRoots: .pemFile(path: path))
    }

    /// A client context for this configuration. Reads the PEM file now, so a missing or
    /// empty file is reported before any connection is made.
    func makeContext() throws(RelayConnectionError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        switch trustRoots {
        case .system:
            configuration.trustRoots = .default
        case let .pemFile(path):
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(path)
            } catch {
                throw .tlsFailure("cannot read CA certificates from \(path): \(RelayConnectionError.oneLine(error))")
            }
            guard !certificates.isEmpty else { throw .tlsFailure("no PEM certificates in \(path)") }
            configuration.trustRoots = .certificates(certificates)
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw .tlsFailure("cannot create TLS context: \(RelayConnectionError.oneLine(error))")
        }
    }
}
