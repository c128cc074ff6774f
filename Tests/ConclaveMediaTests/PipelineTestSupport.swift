import ConclaveMedia
import Foundation

/// A fresh path in the temporary directory for pipeline tests.
func pipelineTemporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "conclave-pipeline-\(UInt64.random(in: 0...UInt64.max))-" + name
}

/// Lower-case hex of `bytes`.
func pipelineHex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// Bytes from a hex string (spaces ignored).
func pipelineBytes(hex: String) -> [UInt8] {
    let digits = Array(hex.filter { !$0.isWhitespace })
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

/// Relative error of `measured` against `expected`.
func relativeError(_ measured: Double, _ expected: Double) -> Double {
    abs(measured - expected) / expected
}
