import Benchmark

extension Benchmark.Configuration {
    /// What every Conclave suite measures: throughput, wall clock and mallocs, per 1 000
    /// operations (scalingFactor .kilo), for at most a second or 10 000 iterations.
    ///
    /// Not `.instructions`: in benchmark 1.38.1 it makes the harness read /proc/self/stat and
    /// /proc/self/io inside the measured window (it counts as an OS-stats metric), which adds
    /// 16 mallocs per iteration to every benchmark, an empty loop included, and would hide the
    /// 0 these suites exist to prove. (This VM also has no PMU, so it would report nothing.)
    public static var conclave: Benchmark.Configuration {
        .init(
            metrics: [.throughput, .wallClock, .mallocCountTotal], timeUnits: .microseconds,
            scalingFactor: .kilo, maxDuration: .seconds(1), maxIterations: 10_000)
    }
}
