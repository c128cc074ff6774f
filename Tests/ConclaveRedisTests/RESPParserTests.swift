import Testing
import NIOCore
@testable import ConclaveRedis
import ConclaveTestSupport

@Suite struct RESPParserTests {
    private func bytes(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    private func parseAll(_ s: String, limits: RESPParser.Limits = .default) throws -> RESPValue? {
        var b = bytes(s)
        let v = try RESPParser(limits: limits).parse(&b)
        if v != nil { #expect(b.readableBytes == 0) }
        return v
    }

    static let samples: [RESPValue] = [
        .simpleString("OK"), .error("ERR unknown command"), .integer(-42), .integer(Int64.max), .integer(Int64.min + 1),
        .bulkString(Array("héllo\r\nworld".utf8)), .bulkString([]), .bulkString(nil), .array(nil), .array([]),
        .array([.integer(1), .bulkString([0, 255, 13, 10]), .array([.simpleString("nested"), .null])]),
        .null, .boolean(true), .boolean(false), .double(3.25), .double(-.infinity), .bigNumber("-3492890328409238509324850943850943825024385"),
        .verbatim("Some string"), .map([RESPPair(key: .simpleString("k"), value: .integer(1))]), .set([.integer(1), .integer(2)]),
        .push([.bulkString(Array("message".utf8)), .bulkString(Array("ch".utf8)), .bulkString([1, 2, 3])]),
    ]

    @Test func everyTypeRoundTrips() throws {
        for value in Self.samples {
            var b = ByteBuffer()
            RESPEncoder.encode(value, into: &b)
            let parsed = try RESPParser().parse(&b)
            #expect(parsed == value, "\(value)")
            #expect(b.readableBytes == 0)
        }
    }

    /// Found by FuzzRESP: a bulk error holding CRLF was re-encoded as a simple error line,
    /// which cut it short.
    @Test func aBulkErrorWithCRLFRoundTrips() throws {
        var b = ByteBuffer(string: "!5\r\n(*0\r\n\r\n")
        let value = try #require(try RESPParser().parse(&b))
        #expect(value == .error("(*0\r\n"))
        var encoded = ByteBuffer()
        RESPEncoder.encode(value, into: &encoded)
        #expect(try RESPParser().parse(&encoded) == value)
        #expect(encoded.readableBytes == 0)
    }

    @Test func nanRoundTrips() throws {
        guard case .double(let d)? = try parseAll(",nan\r\n") else { Issue.record("not a double"); return }
        #expect(d.isNaN)
    }

    /// Every proper prefix is incomplete and leaves the buffer as it was.
    @Test func everyPrefixIsIncompleteAndUntouched() throws {
        for value in Self.samples {
            var whole = ByteBuffer()
            RESPEncoder.encode(value, into: &whole)
            for n in 0..<whole.readableBytes {
                var prefix = whole.getSlice(at: 0, length: n)!
                #expect(try RESPParser().parse(&prefix) == nil)
                #expect(prefix.readerIndex == 0 && prefix.readableBytes == n)
            }
        }
    }

    @Test func pipelinedRepliesParseOneByOne() throws {
        var b = bytes("+OK\r\n:5\r\n$3\r\nabc\r\n")
        let p = RESPParser()
        #expect(try p.parse(&b) == .simpleString("OK"))
        #expect(try p.parse(&b) == .integer(5))
        #expect(try p.parse(&b) == .bulkString(Array("abc".utf8)))
        #expect(try p.parse(&b) == nil)
    }

    @Test func commandEncodingIsAnArrayOfBulkStrings() {
        var b = ByteBuffer()
        RESPEncoder.encode(RedisCommand("SET", ["k", "v\r\n"]), into: &b)
        #expect(String(buffer: b) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n")
    }

    @Test func attributesAreDiscarded() throws {
        #expect(try parseAll("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n:7\r\n") == .integer(7))
    }

    @Test func limitsAreCheckedBeforeAllocation() {
        let small = RESPParser.Limits(maximumLineLength: 16, maximumBulkLength: 8, maximumElements: 4, maximumDepth: 3, maximumReplyBytes: 64)
        #expect(throws: RESPParseError.bulkTooLong(length: 9, limit: 8)) { try parseAll("$9\r\n", limits: small) }
        #expect(throws: RESPParseError.bulkTooLong(length: 999_999_999_999, limit: 1 << 20)) { try parseAll("$999999999999\r\n") }
        #expect(throws: RESPParseError.tooManyElements(count: 5, limit: 4)) { try parseAll("*5\r\n", limits: small) }
        #expect(throws: RESPParseError.tooManyElements(count: 5, limit: 4)) { try parseAll("%5\r\n", limits: small) }
        #expect(throws: RESPParseError.tooDeep(limit: 3)) { try parseAll("*1\r\n*1\r\n*1\r\n*1\r\n", limits: small) }
        #expect(throws: RESPParseError.lineTooLong(limit: 16)) { try parseAll("+" + String(repeating: "a", count: 20), limits: small) }
        // An incomplete reply may not grow past the reply limit.
        #expect(throws: RESPParseError.replyTooLarge(limit: 64)) {
            try parseAll(
                "*5\r\n" + String(repeating: "+aaaaaaaaaaaa\r\n", count: 4) + "+aa",
                limits: RESPParser.Limits(maximumLineLength: 16, maximumElements: 8, maximumReplyBytes: 64))
        }
    }

    @Test func malformedInputIsATypedError() {
        #expect(throws: RESPParseError.unknownType(UInt8(ascii: "?"))) { try parseAll("?x\r\n") }
        #expect(throws: RESPParseError.badInteger) { try parseAll(":12a\r\n") }
        #expect(throws: RESPParseError.badInteger) { try parseAll(":\r\n") }
        #expect(throws: RESPParseError.badInteger) { try parseAll(":99999999999999999999\r\n") }
        #expect(throws: RESPParseError.badLength) { try parseAll("$-2\r\n") }
        #expect(throws: RESPParseError.badLength) { try parseAll("~-1\r\n") }
        #expect(throws: RESPParseError.missingTerminator) { try parseAll("$3\r\nabcXY") }
        #expect(throws: RESPParseError.missingTerminator) { try parseAll("+OK\rX") }
        #expect(throws: RESPParseError.badBoolean) { try parseAll("#x\r\n") }
        #expect(throws: RESPParseError.badDouble) { try parseAll(",1.5x\r\n") }
        #expect(throws: RESPParseError.badLength) { try parseAll("_x\r\n") }
        #expect(throws: RESPParseError.badLength) { try parseAll("=2\r\nab\r\n") }
    }

    /// Random bytes never crash the parser: each input parses, is incomplete, or throws.
    @Test func randomBytesNeverCrash() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let alphabet = Array("+-:$*%~>_#,(!=|\r\n0123456789-abc".utf8)
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 40)
            var b = ByteBuffer(bytes: (0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            let before = b
            do {
                if try RESPParser().parse(&b) == nil { #expect(b == before) }
            } catch {
                #expect(error is RESPParseError)
            }
        }
    }
}

@Suite struct RedisEndpointTests {
    @Test func parsesURLs() throws {
        #expect(try RedisEndpoint(url: "redis://127.0.0.1:6390") == RedisEndpoint(host: "127.0.0.1", port: 6390))
        #expect(try RedisEndpoint(url: "redis://localhost") == RedisEndpoint(host: "localhost"))
        #expect(try RedisEndpoint(url: "redis://:s3cret@[::1]:7000/2") == RedisEndpoint(host: "::1", port: 7000, password: "s3cret", database: 2))
        #expect(try RedisEndpoint(url: "redis://relay:pw@h:1") == RedisEndpoint(host: "h", port: 1, username: "relay", password: "pw"))
    }

    @Test func rejectsBadURLs() {
        for bad in ["http://h:1", "rediss://h:1", "redis://", "redis://h:0", "redis://h:70000", "redis://h:x", "redis://h/db", "redis://[::1", "redis://h h:1"]
        {
            #expect(throws: RedisError.self, "\(bad)") { try RedisEndpoint(url: bad) }
        }
    }

    @Test func passwordNeverInDescription() throws {
        let e = try RedisEndpoint(url: "redis://:hunter2@h:1")
        #expect(!e.description.contains("hunter2"))
        #expect(!RedisCommand("AUTH", ["hunter2"]).description.contains("hunter2"))
    }

    @Test func backoffGrowsWithJitterAndIsCapped() {
        let b = ReconnectBackoff(initial: .milliseconds(50), maximum: .seconds(2))
        #expect(b.delay(attempt: 0, unit: 0) == .milliseconds(25))
        #expect(b.delay(attempt: 0, unit: 1) == .milliseconds(50))
        #expect(b.delay(attempt: 3, unit: 1) == .milliseconds(400))
        #expect(b.delay(attempt: 10, unit: 1) == .seconds(2))
        #expect(b.delay(attempt: 1_000, unit: 0.5) == .milliseconds(1500))
    }
}
