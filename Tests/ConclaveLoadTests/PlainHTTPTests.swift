import Testing
@testable import ConclaveLoad

/// The HTTP GET the load runner scrapes `/metrics` with (and the tests share): its body
/// framing, and its refusals.
@Suite struct PlainHTTPTests {
    func parse(_ text: String) throws -> PlainHTTP.Response { try PlainHTTP.parse(Array(text.utf8)) }

    @Test func contentLengthBodyIsCutToItsLength() throws {
        let r = try parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello, and more")
        #expect(r == PlainHTTP.Response(status: 200, body: "hello"))
    }

    @Test func chunkedBodyIsReassembled() throws {
        let r = try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nconc\r\n5;ext=1\r\nlave \r\nA\r\nis running\r\n0\r\n\r\n")
        #expect(r.body == "conclave is running")
    }

    @Test func bodyUntilCloseWithoutFraming() throws {
        #expect(try parse("HTTP/1.1 404 Not Found\r\n\r\nno such page").status == 404)
        #expect(try parse("HTTP/1.1 404 Not Found\r\n\r\nno such page").body == "no such page")
    }

    @Test func malformedResponsesAreRefusedWithAReason() {
        #expect(throws: PlainHTTP.Failure(description: "no end of headers")) { try parse("HTTP/1.1 200 OK\r\nContent-Length: 3") }
        #expect(throws: PlainHTTP.Failure(description: "bad status line")) { try parse("SSH-2.0-OpenSSH\r\n\r\n") }
        #expect(throws: PlainHTTP.Failure(description: "truncated chunk")) { try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nshort\r\n") }
        #expect(throws: PlainHTTP.Failure(description: "bad chunk size")) { try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") }
        #expect(throws: PlainHTTP.Failure(description: "body shorter than its Content-Length")) {
            try parse("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nabc")
        }
    }
}
