import Foundation
import ConclaveCrypto
@testable import ConclaveProtocol

func hexBytes(_ s: String) -> [UInt8] { Hex.decode(s)! }

/// The repository root.
var repositoryRoot: URL { TestPaths.repositoryRoot }

/// RFC 9605's published vectors, if the shared folder sits beside the repository.
func sharedRFC9605Vectors() -> [String: Any]? {
    let candidates = [
        repositoryRoot.appendingPathComponent("../shared/vectors/sframe-rfc9605.json"),
        repositoryRoot.appendingPathComponent("shared/vectors/sframe-rfc9605.json"),
    ]
    for url in candidates {
        if let data = try? Data(contentsOf: url), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            return json
        }
    }
    return nil
}

func loadVectorFile(_ name: String) throws -> [String: Any] {
    let url = repositoryRoot.appendingPathComponent("protocol/test-vectors/\(name)")
    let data = try Data(contentsOf: url)
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

func writeVectorFile(_ name: String, _ object: [String: Any]) throws {
    let url = repositoryRoot.appendingPathComponent("protocol/test-vectors/\(name)")
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    try (data + Data("\n".utf8)).write(to: url)
}

var shouldWriteVectors: Bool { ProcessInfo.processInfo.environment["CONCLAVE_WRITE_VECTORS"] == "1" }

// SplitMix64 (the tests' seedable generator) comes from ConclaveTestSupport.
@_exported import ConclaveTestSupport

extension SFrameKey {
    /// Convenience for tests: seal into a fresh array.
    func seal(counter: UInt64, metadata: [UInt8], plaintext: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: sealedLength(counter: counter, plaintextLength: plaintext.count))
        let n = try out.withUnsafeMutableBytes { o in
            try metadata.withUnsafeBytes { m in try plaintext.withUnsafeBytes { p in try seal(counter: counter, metadata: m, plaintext: p, into: o) } }
        }
        return Array(out[0..<n])
    }

    func open(frame: [UInt8], metadata: [UInt8]) throws -> (counter: UInt64, plaintext: [UInt8]) {
        var out = [UInt8](repeating: 0, count: frame.count)
        let r = try out.withUnsafeMutableBytes { o in
            try frame.withUnsafeBytes { f in try metadata.withUnsafeBytes { m in try open(frame: f, metadata: m, into: o) } }
        }
        return (r.counter, Array(out[0..<r.plaintextLength]))
    }
}
