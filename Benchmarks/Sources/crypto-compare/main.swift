// The four AEAD paths side by side: `conclave bench crypto` (frame cipher and libsodium)
// plus the two comparisons that need swift-crypto or exist only to be measured.
//
//   swift run -c release crypto-compare [--json] [--rounds N] [--milliseconds MS]
import ComparisonPaths
import ConclaveBench
#if canImport(Glibc)
import Glibc
#endif

var configuration = CryptoBench.Configuration(contenders: CryptoBench.Contender.all)
var json = false
var arguments = CommandLine.arguments.dropFirst()
func usage(_ problem: String) -> Never {
    print("crypto-compare: \(problem)\nusage: crypto-compare [--json] [--rounds 1…50] [--milliseconds 10…5000]")
    exit(2)
}
while let argument = arguments.popFirst() {
    switch argument {
    case "--json": json = true
    case "--rounds":
        guard let n = arguments.popFirst().flatMap(Int.init), (1...50).contains(n) else { usage("--rounds takes 1…50") }
        configuration.rounds = n
    case "--milliseconds":
        guard let n = arguments.popFirst().flatMap(Int.init), (10...5000).contains(n) else { usage("--milliseconds takes 10…5000") }
        configuration.measurementDuration = .milliseconds(n)
    default: usage("unknown argument \(argument)")
    }
}
do {
    let report = try CryptoBench.run(configuration)
    print(json ? report.renderJSON() : report.renderText())
} catch {
    print("crypto-compare: \(error)")
    exit(1)
}
