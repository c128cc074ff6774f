import Benchmark

extension Benchmark.Configuration {
    /// What every Conclave suite measures: throughput, wall clock and mallocs, per 1 000
    /// operations (scalingFactor .kilo), for at most a second or 10 000 iterations.
    ///
    /// Not `.instructions`: in benchmark 1.38.1 it makes the harness read /proc/self/stat and
    /// /proc/self/io inside the measured window (it counts as an OS-stats metric), which adds
    /// 16 mallocs per iteration to every benchmark, an empty loop included, and would hide the
    /// 0 these suites exist to prove. (This VM also has no PMU, so it would report nothing.)
    ///
    /// The thresholds are what `swift package benchmark thresholds check` holds a run to,
    /// against the figures stored in `Benchmarks/Thresholds/` (`thresholds update` writes
    /// them): no allocation more at any percentile (the zero-allocation paths stay at zero),
    /// and throughput and time per iteration no more than 25 % worse at the median (35 % at
    /// p90), wide enough for this shared machine's noise between runs.
    public static var conclave: Benchmark.Configuration {
        .init(
            metrics: [.throughput, .wallClock, .mallocCountTotal], timeUnits: .microseconds,
            scalingFactor: .kilo, maxDuration: .seconds(1), maxIterations: 10_000,
            thresholds: [
                .mallocCountTotal: .init(relative: BenchmarkThresholds.Relative.strict, absolute: BenchmarkThresholds.Absolute.strict),
                .throughput: .init(relative: [.p50: 25.0, .p90: 35.0]),
                .wallClock: .init(relative: [.p50: 25.0, .p90: 35.0]),
            ])
    }
}
