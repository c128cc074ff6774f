import CSodium
import ConclaveCrypto
import Foundation

/// The result of ``CryptoBench/run(_:)``: medians per frame size and path, the machine it
/// ran on, and two renderings (a table for people, JSON for tools).
public struct CryptoBenchReport: Sendable {
    /// One path at one frame size.
    public struct PathResult: Sendable {
        public let path: CryptoBench.Path
        /// Median over rounds of seal+open round trips per second.
        public let framesPerSecond: Double
        /// Median over rounds of seals per second (time spent sealing only).
        public let sealFramesPerSecond: Double
        /// Median over rounds of opens per second (time spent opening only).
        public let openFramesPerSecond: Double
        /// Median over rounds of `framesPerSecond / libsodium's framesPerSecond` in that round.
        public let ratioToLibsodium: Double
        public let sealRatioToLibsodium: Double
        public let openRatioToLibsodium: Double
        /// Seal+open rate of each round, in order, to judge the noise.
        public let roundFramesPerSecond: [Double]

        /// `(max - min) / median` of the per-round seal+open rates.
        public var spread: Double {
            guard let lo = roundFramesPerSecond.min(), let hi = roundFramesPerSecond.max(), framesPerSecond > 0 else { return 0 }
            return (hi - lo) / framesPerSecond
        }

        init(path: CryptoBench.Path, samples: [CryptoBench.Sample], baseline: [CryptoBench.Sample]) {
            self.path = path
            framesPerSecond = median(samples.map(\.roundTripsPerSecond))
            sealFramesPerSecond = median(samples.map(\.sealsPerSecond))
            openFramesPerSecond = median(samples.map(\.opensPerSecond))
            ratioToLibsodium = median(zip(samples, baseline).map { $0.roundTripsPerSecond / $1.roundTripsPerSecond })
            sealRatioToLibsodium = median(zip(samples, baseline).map { $0.sealsPerSecond / $1.sealsPerSecond })
            openRatioToLibsodium = median(zip(samples, baseline).map { $0.opensPerSecond / $1.opensPerSecond })
            roundFramesPerSecond = samples.map(\.roundTripsPerSecond)
        }
    }

    /// All paths at one frame size, in the order of the configuration's contenders.
    public struct SizeResult: Sendable {
        public let plaintextLength: Int
        public let paths: [PathResult]

        public func result(for path: CryptoBench.Path) -> PathResult? { paths.first { $0.path == path } }
    }

    /// Where and how the run happened.
    public struct Machine: Sendable {
        public let libsodiumVersion: String
        /// From `/proc/cpuinfo` where there is one.
        public let cpuModel: String?
        public let logicalCPUs: Int
        public let operatingSystem: String
        /// The CPU features libsodium detected at runtime (they select its ChaCha20 and
        /// Poly1305 implementations), e.g. `["sse2", "ssse3", "avx2"]`.
        public let cpuFeatures: [String]
        /// "release" or "debug". Debug figures are not meaningful.
        public let buildConfiguration: String
        /// Cost of one read of the timing clock, subtracted from every timed interval.
        public let clockReadNanoseconds: Int

        static func current(clockReadNanoseconds: Int) -> Machine {
            Sodium.ensureInitialized()
            let features: [(String, Int32)] = [
                ("sse2", sodium_runtime_has_sse2()), ("ssse3", sodium_runtime_has_ssse3()),
                ("sse41", sodium_runtime_has_sse41()), ("avx", sodium_runtime_has_avx()),
                ("avx2", sodium_runtime_has_avx2()), ("avx512f", sodium_runtime_has_avx512f()),
                ("aesni", sodium_runtime_has_aesni()), ("pclmul", sodium_runtime_has_pclmul()),
                ("neon", sodium_runtime_has_neon()),
            ]
            #if DEBUG
            let build = "debug"
            #else
            let build = "release"
            #endif
            return Machine(
                libsodiumVersion: Sodium.versionString,
                cpuModel: cpuModelName(),
                logicalCPUs: ProcessInfo.processInfo.activeProcessorCount,
                operatingSystem: ProcessInfo.processInfo.operatingSystemVersionString,
                cpuFeatures: features.filter { $0.1 != 0 }.map(\.0),
                buildConfiguration: build,
                clockReadNanoseconds: clockReadNanoseconds)
        }

        private static func cpuModelName() -> String? {
            guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
            for line in info.split(separator: "\n") where line.hasPrefix("model name") {
                if let colon = line.firstIndex(of: ":") {
                    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
    }

    /// When the run finished.
    public let date: Date
    public let configuration: CryptoBench.Configuration
    public let machine: Machine
    /// One entry per configured size, in configuration order.
    public let sizes: [SizeResult]

    init(configuration: CryptoBench.Configuration, machine: Machine, sizes: [SizeResult], date: Date = Date()) {
        self.configuration = configuration
        self.machine = machine
        self.sizes = sizes
        self.date = date
    }

    // MARK: - Text

    /// A table for a terminal: one line per size and path.
    public func renderText() -> String {
        var out = "Conclave crypto bench: XChaCha20-Poly1305 frames, seal then open, \(configuration.aadLength)-byte AAD\n"
        out += "\(date.formatted(.iso8601)) | libsodium \(machine.libsodiumVersion) | \(machine.cpuModel ?? "unknown CPU")"
        out += " | \(machine.logicalCPUs) CPUs | \(machine.buildConfiguration) build\n"
        out += "\(configuration.rounds) rounds x \(format(configuration.measurementDuration.seconds, decimals: 2)) s per path and size,"
        out += " paths interleaved, timed by \(configuration.timingClock.rawValue) (\(machine.clockReadNanoseconds) ns per read, subtracted);"
        out += " medians; ratios are per-round medians against libsodium\n"
        if machine.buildConfiguration == "debug" {
            out += "WARNING: debug build; run with -c release for meaningful figures\n"
        }
        let header = ["size", "path", "seal+open/s", "x libsodium", "seal/s", "x ls", "open/s", "x ls", "spread"]
        var rows: [[String]] = []
        for size in sizes {
            for r in size.paths {
                rows.append([
                    "\(size.plaintextLength) B", r.path.rawValue,
                    grouped(r.framesPerSecond), format(r.ratioToLibsodium, decimals: 2),
                    grouped(r.sealFramesPerSecond), format(r.sealRatioToLibsodium, decimals: 2),
                    grouped(r.openFramesPerSecond), format(r.openRatioToLibsodium, decimals: 2),
                    format(r.spread * 100, decimals: 0) + " %",
                ])
            }
        }
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max()! }
        let leftAligned: Set<Int> = [0, 1]
        func line(_ cells: [String]) -> String {
            cells.indices.map { c in
                let pad = String(repeating: " ", count: widths[c] - cells[c].count)
                return leftAligned.contains(c) ? cells[c] + pad : pad + cells[c]
            }.joined(separator: "  ")
        }
        out += "\n" + line(header) + "\n"
        var previousSize: String?
        for row in rows {
            if let previousSize, previousSize != row[0] { out += "\n" }
            previousSize = row[0]
            out += line(row) + "\n"
        }
        return out
    }

    // MARK: - JSON

    /// One JSON object with sorted, stable keys:
    ///
    /// ```
    /// { "benchmark": "conclave-crypto-bench", "date": "2025-01-01T00:00:00Z",
    ///   "machine": { "build_configuration", "clock_read_ns", "cpu_features", "cpu_model",
    ///                "libsodium_version", "logical_cpus", "os" },
    ///   "configuration": { "aad_bytes", "batch_frames", "measurement_seconds", "rounds",
    ///                      "sizes", "timing_clock", "warmup_seconds" },
    ///   "results": [ { "size_bytes": 160,
    ///                  "paths": { "frame-cipher": { "frames_per_second", "ratio_to_libsodium",
    ///                                               "seal_frames_per_second", "seal_ratio_to_libsodium",
    ///                                               "open_frames_per_second", "open_ratio_to_libsodium",
    ///                                               "round_frames_per_second": [...] },
    ///                             "libsodium": {...}, "swift-crypto": {...}, "allocating": {...} } } ] }
    /// ```
    /// Rates are whole frames per second (seal+open round trips for `frames_per_second`);
    /// ratios have three decimals.
    public func renderJSON() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try! encoder.encode(JSONReport(self))  // only strings, integers and finite doubles
        return String(decoding: data, as: UTF8.self)
    }

    private struct JSONReport: Encodable {
        struct MachineJSON: Encodable {
            let build_configuration: String
            let clock_read_ns: Int
            let cpu_features: [String]
            let cpu_model: String?
            let libsodium_version: String
            let logical_cpus: Int
            let os: String
        }
        struct ConfigurationJSON: Encodable {
            let aad_bytes: Int
            let batch_frames: Int
            let measurement_seconds: Double
            let rounds: Int
            let sizes: [Int]
            let timing_clock: String
            let warmup_seconds: Double
        }
        struct PathJSON: Encodable {
            let frames_per_second: Int
            let ratio_to_libsodium: Double
            let seal_frames_per_second: Int
            let seal_ratio_to_libsodium: Double
            let open_frames_per_second: Int
            let open_ratio_to_libsodium: Double
            let round_frames_per_second: [Int]
        }
        struct SizeJSON: Encodable {
            let size_bytes: Int
            let paths: [String: PathJSON]
        }

        let benchmark = "conclave-crypto-bench"
        let date: String
        let machine: MachineJSON
        let configuration: ConfigurationJSON
        let results: [SizeJSON]

        init(_ report: CryptoBenchReport) {
            date = report.date.formatted(.iso8601)
            let m = report.machine
            machine = MachineJSON(
                build_configuration: m.buildConfiguration, clock_read_ns: m.clockReadNanoseconds,
                cpu_features: m.cpuFeatures, cpu_model: m.cpuModel,
                libsodium_version: m.libsodiumVersion, logical_cpus: m.logicalCPUs, os: m.operatingSystem)
            let c = report.configuration
            configuration = ConfigurationJSON(
                aad_bytes: c.aadLength, batch_frames: c.batchSize,
                measurement_seconds: c.measurementDuration.seconds, rounds: c.rounds,
                sizes: c.sizes, timing_clock: c.timingClock.rawValue,
                warmup_seconds: c.warmupDuration.seconds)
            results = report.sizes.map { size in
                SizeJSON(
                    size_bytes: size.plaintextLength,
                    paths: Dictionary(
                        uniqueKeysWithValues: size.paths.map { r in
                            (
                                r.path.rawValue,
                                PathJSON(
                                    frames_per_second: whole(r.framesPerSecond), ratio_to_libsodium: rounded(r.ratioToLibsodium),
                                    seal_frames_per_second: whole(r.sealFramesPerSecond), seal_ratio_to_libsodium: rounded(r.sealRatioToLibsodium),
                                    open_frames_per_second: whole(r.openFramesPerSecond), open_ratio_to_libsodium: rounded(r.openRatioToLibsodium),
                                    round_frames_per_second: r.roundFramesPerSecond.map(whole))
                            )
                        }))
            }
        }
    }
}

// MARK: - Number helpers

func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty)
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

private func whole(_ value: Double) -> Int { value.isFinite ? Int(value.rounded()) : 0 }
private func rounded(_ value: Double) -> Double { value.isFinite ? (value * 1000).rounded() / 1000 : 0 }

/// `value` with `decimals` digits after the point.
private func format(_ value: Double, decimals: Int) -> String {
    guard value.isFinite else { return "-" }
    return String(format: "%.\(decimals)f", value)
}

/// A whole number with thin grouping: 1234567 -> "1 234 567".
private func grouped(_ value: Double) -> String {
    let digits = String(whole(value))
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0, (digits.count - i) % 3 == 0 { out += " " }
        out.append(ch)
    }
    return out
}
