import Foundation

/// Renders load-run results for people and for scripts.
///
/// Every function is pure: it takes values and returns a string, so the runner decides
/// where it goes (stdout, a file). Non-finite numbers never crash a renderer: text shows
/// them as `n/a`, JSON as `null`, and charts leave them out.
public enum LoadReport {}

// MARK: - Progress line and tables

extension LoadReport {
    /// The once-per-second progress line, e.g.
    /// `t=12s connected=300 sent=15000/s recv=60000/s loss=0.00% p99=3.1ms`.
    public static func progressLine(_ sample: LoadSample) -> String {
        "t=\(ReportFormat.integer(sample.tSeconds))s connected=\(sample.connected)"
            + " sent=\(ReportFormat.integer(sample.sentPerSecond))/s recv=\(ReportFormat.integer(sample.receivedPerSecond))/s"
            + " loss=\(ReportFormat.fixed(sample.lossPercent, 2))% p99=\(ReportFormat.fixed(sample.p99Ms, 1))ms"
    }

    /// A two-column table of every field of `s`: the configuration, then the results,
    /// then the errors (one per line). Labels are padded so the values line up.
    public static func table(_ s: LoadSummary) -> String {
        var rows = configurationRows(s) + [("", "")] + resultRows(s)
        if s.errors.isEmpty {
            rows.append(("errors", "none"))
        } else {
            for (i, error) in s.errors.enumerated() {
                rows.append((i == 0 ? "errors (\(s.errors.count))" : "", oneLine(error)))
            }
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { label, value in
            label.isEmpty && value.isEmpty ? "" : ReportFormat.pad(label, width) + "  " + value
        }.joined(separator: "\n") + "\n"
    }

    /// One row per capacity step, then a line naming the highest passing step (or saying
    /// that none passed, with the thresholds).
    public static func capacityTable(_ r: CapacityResult) -> String {
        let header = ["step", "rooms × per room", "connected", "loss", "p99", "relay CPU", "RSS/participant", "result"]
        let rows: [[String]] = r.steps.enumerated().map { i, s in
            [
                "\(i + 1)",
                "\(s.configuration.rooms) × \(s.configuration.perRoom)",
                "\(s.participantsConnected)/\(s.participantsTarget)",
                ReportFormat.fixed(s.lossPercent, 3) + "%",
                ReportFormat.fixed(s.latency.p99Ms, 2) + " ms",
                s.relayCPUPercent.map { ReportFormat.fixed($0, 1) + "%" } ?? "n/a",
                s.relayRSSPerParticipantBytes.map(ReportFormat.kib) ?? "n/a",
                s.passed ? "PASS" : "FAIL",
            ]
        }
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
        var lines = all.map { row in
            row.enumerated().map { c, cell in
                c == row.count - 1 ? cell : ReportFormat.pad(cell, widths[c])
            }.joined(separator: "  ")
        }
        if r.steps.isEmpty { lines.append("(no steps ran)") }
        lines.append("")
        lines.append(capacityVerdict(r))
        return lines.joined(separator: "\n") + "\n"
    }

    /// The capacity table's last line.
    static func capacityVerdict(_ r: CapacityResult) -> String {
        let thresholds = "loss <= \(ReportFormat.trimmed(r.lossThresholdPercent))%, p99 <= \(ReportFormat.trimmed(r.p99ThresholdMs)) ms"
        guard let best = r.best else {
            return "no step passed (\(thresholds))"
        }
        let step = r.bestStepNumber.map { "step \($0): " } ?? ""
        return "highest passing step: \(step)\(best.participantsTarget) participants"
            + " (\(best.configuration.rooms) rooms × \(best.configuration.perRoom)),"
            + " loss \(ReportFormat.fixed(best.lossPercent, 3))%, p99 \(ReportFormat.fixed(best.latency.p99Ms, 2)) ms"
            + " (\(thresholds))"
    }
}

// MARK: - Rows shared by the text table and the HTML page

extension LoadReport {
    static func configurationRows(_ s: LoadSummary) -> [(String, String)] {
        let c = s.configuration
        return [
            ("relay", c.relay),
            ("rooms × per room", "\(c.rooms) × \(c.perRoom) (\(c.rooms &* c.perRoom) participants)"),
            ("transport", c.transport),
            ("duration", "\(ReportFormat.fixed(c.durationSeconds, 1)) s (ramp \(ReportFormat.fixed(c.rampSeconds, 1)) s)"),
            ("audio", "\(c.audioFPS) frames/s × \(c.frameBytes) B, \(c.talkers) of \(c.perRoom) talking per room"),
            ("decrypt", c.decrypt),
            ("date", s.date),
            ("machine", s.machine),
        ]
    }

    static func resultRows(_ s: LoadSummary) -> [(String, String)] {
        func ms(_ v: Double) -> String { ReportFormat.fixed(v, 2) + " ms" }
        let notMeasured = "not measured"
        return [
            (
                "participants",
                "\(s.participantsConnected)/\(s.participantsTarget) connected"
                    + " (udp \(s.udpParticipants), ws \(s.wsParticipants))"
            ),
            ("frames sent", ReportFormat.grouped(s.framesSent)),
            ("frames expected", ReportFormat.grouped(s.framesExpected)),
            ("frames received", ReportFormat.grouped(s.framesReceived)),
            ("loss", ReportFormat.fixed(s.lossPercent, 3) + "%"),
            ("duplicates", ReportFormat.grouped(s.duplicates)),
            ("decrypt failures", ReportFormat.grouped(s.decryptFailures)),
            ("frames decrypted", ReportFormat.grouped(s.framesDecrypted)),
            (
                "dropped by clients",
                "\(ReportFormat.grouped(s.clientQueues.staleAudioDropped)) stale audio, "
                    + "\(ReportFormat.grouped(s.clientQueues.mediaOverflowDropped)) over the queue limit, "
                    + "\(ReportFormat.grouped(s.clientQueues.lateAudioDropped)) late"
            ),
            (
                "client queue peaks",
                "media \(s.clientQueues.peakQueuedMedia) (limit \(s.clientQueues.mediaLimit)), "
                    + "control \(s.clientQueues.peakQueuedControl) (reads pause at \(s.clientQueues.controlHighWatermark))"
            ),
            ("latency p50", ms(s.latency.p50Ms)),
            ("latency p90", ms(s.latency.p90Ms)),
            ("latency p99", ms(s.latency.p99Ms)),
            ("latency p99.9", ms(s.latency.p999Ms)),
            ("latency max", ms(s.latency.maxMs)),
            ("latency samples", ReportFormat.grouped(s.latency.count)),
            ("join p50 / p99", "\(ms(s.joinP50Ms)) / \(ms(s.joinP99Ms))"),
            ("rekey after removal", s.rekeyAfterRemovalMs.map(ms) ?? notMeasured),
            ("runner CPU", ReportFormat.fixed(s.runnerCPUPercent, 1) + "%"),
            (
                "runner CPU per frame",
                s.clientCPU.map {
                    "\(ReportFormat.fixed($0.runnerMicrosPerOperation, 2)) µs per seal or open = \(ReportFormat.fixed($0.ratio, 2))× the bare crypto "
                        + "(user space alone \(ReportFormat.fixed($0.userRatio, 2))×; "
                        + "seal \(ReportFormat.fixed($0.bareSealMicros, 2)) µs, open \(ReportFormat.fixed($0.bareOpenMicros, 2)) µs, this run)"
                } ?? notMeasured
            ),
            ("relay CPU", s.relayCPUPercent.map { ReportFormat.fixed($0, 1) + "%" } ?? notMeasured),
            ("relay RSS", s.relayRSSBytes.map(ReportFormat.mib) ?? notMeasured),
            ("relay RSS per participant", s.relayRSSPerParticipantBytes.map(ReportFormat.kib) ?? notMeasured),
            ("result", s.passed ? "PASS" : "FAIL"),
        ]
    }

    /// Keeps a multi-line error message on one table row.
    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
}

// MARK: - Number formatting

/// Number formatting shared by the renderers. Non-finite values become `n/a`.
enum ReportFormat {
    /// `x` with exactly `digits` decimals.
    static func fixed(_ x: Double, _ digits: Int) -> String {
        guard x.isFinite else { return "n/a" }
        let s = String(format: "%.\(max(0, digits))f", x)
        // "-0.00" reads as a sign error in a report.
        return s.hasPrefix("-") && s.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) ? String(s.dropFirst()) : s
    }

    /// `x` rounded to a whole number.
    static func integer(_ x: Double) -> String { fixed(x, 0) }

    /// `x` with at most `digits` decimals and no trailing zeros: 0.1 -> "0.1", 20 -> "20".
    static func trimmed(_ x: Double, _ digits: Int = 3) -> String {
        var s = fixed(x, digits)
        guard x.isFinite, s.contains(".") else { return s }
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s
    }

    /// Short axis labels: 950, 1.5k, 60k, 2.5M.
    static func compact(_ x: Double) -> String {
        guard x.isFinite else { return "n/a" }
        let a = abs(x)
        if a >= 1_000_000 { return trimmed(x / 1_000_000, 1) + "M" }
        if a >= 1_000 { return trimmed(x / 1_000, 1) + "k" }
        return trimmed(x, 2)
    }

    /// Thousands separated by commas: 1500000 -> "1,500,000".
    static func grouped(_ n: UInt64) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return out
    }

    static func kib(_ bytes: UInt64) -> String { fixed(Double(bytes) / 1024, 1) + " KiB" }
    static func mib(_ bytes: UInt64) -> String { fixed(Double(bytes) / (1024 * 1024), 1) + " MiB" }

    /// `s` followed by spaces up to `width` characters.
    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
