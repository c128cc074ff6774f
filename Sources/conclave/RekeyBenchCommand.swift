import ArgumentParser
import ConclaveBench

/// `conclave bench rekey [--members N] [--json]`: the CPU of one rekey after a removal,
/// leader and every member, on the full path and the delta path in the same run.
struct RekeyBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rekey",
        abstract: "CPU of one rekey after a removal (leader and all members, one process): ROSTER + key packages vs ROSTER_DELTA + key wraps."
    )

    @Option(help: "Members in the room, the leader included (3…500).")
    var members: Int = 500

    @Option(help: "Runs (the one with the median delta-path total is reported).")
    var rounds: Int = 3

    @Flag(help: "Measure only the delta path (for profiling).")
    var deltaOnly = false

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard (3...500).contains(members) else { throw ValidationError("--members must be 3…500") }
        guard (1...20).contains(rounds) else { throw ValidationError("--rounds must be 1…20") }
    }

    func run() throws {
        var reports: [RekeyBench.Report] = []
        for _ in 0..<rounds { reports.append(try RekeyBench.run(members: members, deltaOnly: deltaOnly)) }
        reports.sort { $0.delta.leaderMillis + $0.delta.membersMillis < $1.delta.leaderMillis + $1.delta.membersMillis }
        let report = reports[reports.count / 2]
        print(json ? report.renderJSON() : report.renderText())
    }
}
