import ConclaveChildProcess
import Foundation

/// Where the tests find the repository and the built executables.
public enum TestPaths {
    /// The repository's root (this file is Tests/ConclaveTestSupport/TestFiles.swift).
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// An executable product of this build (`conclave`, `conclave-relay`): next to the
    /// test bundle, else under `.build/debug`. Throws a clear error when it is not built.
    public static func executable(_ name: String) throws -> String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path,
            repositoryRoot.appendingPathComponent(".build/debug/\(name)").path,
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestTimeout(what: "the \(name) executable (looked in \(candidates.joined(separator: ", ")); run `swift build` first")
        }
        return found
    }
}

/// A self-signed P-256 certificate for `CN=localhost`, from the `openssl` CLI, valid for
/// one day, in a new temporary directory that ``remove()`` deletes.
public struct TestCertificate: Sendable {
    public let certPath: String
    public let keyPath: String
    public let directory: String

    /// `subjectAltName`: e.g. `"DNS:localhost"` for a certificate that must not match
    /// `127.0.0.1`.
    public static func make(subjectAltName: String = "DNS:localhost,IP:127.0.0.1") async throws -> TestCertificate {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("conclave-tls-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let certPath = dir.appendingPathComponent("cert.pem").path
        let keyPath = dir.appendingPathComponent("key.pem").path
        guard
            let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"].first(
                where: FileManager.default.isExecutableFile(atPath:))
        else {
            throw TestCertificateError(description: "openssl is not installed (scripts/install-deps.sh installs it)")
        }
        let child = try await ChildProcess.launch(
            openssl,
            arguments: [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=\(subjectAltName)",
                "-keyout", keyPath, "-out", certPath,
            ])
        child.closeInput()
        let exit = await child.waitForExit()
        guard exit == .exited(0) else {
            try? FileManager.default.removeItem(at: dir)
            let message = child.standardError.split(whereSeparator: \.isNewline).joined(separator: " ")
            throw TestCertificateError(description: "openssl req failed (\(exit)): \(message)")
        }
        return TestCertificate(certPath: certPath, keyPath: keyPath, directory: dir.path)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

public struct TestCertificateError: Error, CustomStringConvertible {
    public let description: String
}
