import ConclaveRedis
import FuzzSupport
import NIOCore

/// The Redis reply parser (a relay in a cluster reads what Redis sends): any bytes parse,
/// are incomplete with the buffer untouched, or fail with a typed error; never a trap. A
/// value that parses encodes back to bytes that parse to the same value.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    let parser = RESPParser(
        limits: RESPParser.Limits(
            maximumLineLength: 256, maximumBulkLength: 4096,
            maximumElements: 64, maximumDepth: 8, maximumReplyBytes: 16_384))
    for _ in 0..<64 {
        let before = buffer
        let value: RESPValue?
        do { value = try parser.parse(&buffer) } catch { precondition(!"\(error)".isEmpty); return 0 }
        guard let value else {
            precondition(buffer == before, "an incomplete parse moved the buffer")
            return 0
        }
        precondition(buffer.readableBytes < before.readableBytes, "a parse consumed nothing")
        var encoded = ByteBuffer()
        RESPEncoder.encode(value, into: &encoded)
        let again = try? RESPParser().parse(&encoded)
        precondition(again.map { same($0, value) } ?? false, "a parsed value did not round-trip")
    }
    return 0
}

/// Equality where NaN equals NaN.
func same(_ a: RESPValue, _ b: RESPValue) -> Bool {
    if case .double(let x) = a, case .double(let y) = b, x.isNaN, y.isNaN { return true }
    switch (a, b) {
    case (.array(let x?), .array(let y?)), (.set(let x), .set(let y)), (.push(let x), .push(let y)):
        return x.count == y.count && zip(x, y).allSatisfy(same)
    case (.map(let x), .map(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { same($0.key, $1.key) && same($0.value, $1.value) }
    default:
        return a == b
    }
}
