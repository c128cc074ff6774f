/// A small strict parser for the relay's config file: one JSON object whose values are
/// strings, numbers, booleans or null (null = leave the default). Nested values are
/// rejected with a clear error. Kept here so the relay needs no Foundation for config.
enum FlatJSON {
    struct ParseError: Error, CustomStringConvertible {
        let description: String
    }

    static func parseObject(_ bytes: [UInt8]) throws(ParseError) -> [(String, String)] {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        try p.expect(UInt8(ascii: "{"))
        var out: [(String, String)] = []
        p.skipSpace()
        if p.peek() == UInt8(ascii: "}") { p.i += 1; return try p.end(out) }
        while true {
            p.skipSpace()
            let key = try p.string()
            p.skipSpace()
            try p.expect(UInt8(ascii: ":"))
            p.skipSpace()
            if let value = try p.scalar(key: key) { out.append((key, value)) }
            p.skipSpace()
            if p.peek() == UInt8(ascii: ",") { p.i += 1; continue }
            try p.expect(UInt8(ascii: "}"))
            return try p.end(out)
        }
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        func peek() -> UInt8? { i < bytes.count ? bytes[i] : nil }
        mutating func skipSpace() { while let c = peek(), c == 32 || c == 9 || c == 10 || c == 13 { i += 1 } }
        mutating func expect(_ c: UInt8) throws(ParseError) {
            guard peek() == c else { throw ParseError(description: "expected '\(Character(Unicode.Scalar(c)))' at byte \(i)") }
            i += 1
        }
        mutating func end(_ out: [(String, String)]) throws(ParseError) -> [(String, String)] {
            skipSpace()
            guard i == bytes.count else { throw ParseError(description: "unexpected content after the object at byte \(i)") }
            return out
        }
        mutating func string() throws(ParseError) -> String {
            try expect(UInt8(ascii: "\""))
            var out: [UInt8] = []
            while let c = peek() {
                i += 1
                if c == UInt8(ascii: "\"") {
                    guard let s = String(validating: out, as: UTF8.self) else { throw ParseError(description: "invalid UTF-8 in a string") }
                    return s
                }
                if c == UInt8(ascii: "\\") {
                    guard let e = peek() else { break }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "t"): out.append(9)
                    default: throw ParseError(description: "unsupported escape at byte \(i)")
                    }
                } else {
                    out.append(c)
                }
            }
            throw ParseError(description: "unterminated string")
        }
        mutating func scalar(key: String) throws(ParseError) -> String? {
            guard let c = peek() else { throw ParseError(description: "missing value for \(key)") }
            if c == UInt8(ascii: "\"") { return try string() }
            if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") { throw ParseError(description: "value of \(key) must be a string, number or boolean") }
            let start = i
            while let d = peek(), d != UInt8(ascii: ","), d != UInt8(ascii: "}"), d != 32, d != 10, d != 13, d != 9 { i += 1 }
            let word = String(decoding: bytes[start..<i], as: UTF8.self)
            if word == "null" { return nil }
            if word == "true" || word == "false" || Double(word) != nil { return word }
            throw ParseError(description: "value of \(key) is not valid JSON")
        }
    }
}
