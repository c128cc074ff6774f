import ConclaveRelayConfiguration
import FuzzSupport

/// The relay's config file (`--config FILE`): any bytes either apply or fail with a typed
/// error whose message is not empty; never a trap. A file that applies round-trips: the
/// resulting options, written back as a config file and applied to the defaults, give the
/// same options.
@main struct Main { static func main() { runFuzzer(fuzz) } }

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var configuration = RelayConfiguration()
    do {
        try configuration.applyJSONFile(contents: bytes, path: "fuzz.json")
    } catch {
        precondition(!error.description.isEmpty, "an empty error message")
        return 0
    }
    _ = try? configuration.validate()
    let summary = configuration.summary
    var again = RelayConfiguration()
    do {
        try again.applyJSONFile(contents: Array(render(summary).utf8), path: "again.json")
    } catch {
        preconditionFailure("the written-back config did not apply: \(error.description)")
    }
    precondition(again.summary.elementsEqual(summary, by: { $0 == $1 }), "config did not round-trip")
    return 0
}

/// The options as a flat JSON object of strings.
func render(_ summary: [(name: String, value: String)]) -> String {
    func quote(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
    return "{" + summary.map { "\(quote($0.name)):\(quote($0.value))" }.joined(separator: ",") + "}"
}
