import Foundation

// MARK: - Pages

extension LoadReport {
    /// A complete, self-contained HTML5 page for one run: configuration, results, errors,
    /// and inline SVG charts of throughput and latency over time.
    ///
    /// The page references nothing outside itself (no scripts, fonts, images or URLs), and
    /// every string that comes from data is HTML-escaped.
    public static func html(_ s: LoadSummary) -> String {
        var body = "<h1>conclave load report \(badge(s.passed))</h1>\n"
        body += "<p class=\"meta\">\(escapeHTML(s.date)) · \(escapeHTML(s.machine))</p>\n"
        body += summarySections(s)
        return page(title: "conclave load report: \(s.passed ? "PASS" : "FAIL")", body: body)
    }

    /// A complete, self-contained HTML5 page for `--find-capacity`: the verdict, one row
    /// per step, charts of p99 and loss per step against their thresholds, and the full
    /// report of the highest passing step.
    public static func html(_ r: CapacityResult) -> String {
        var body = "<h1>conclave load capacity report \(badge(r.best != nil))</h1>\n"
        body += "<p class=\"verdict\">\(escapeHTML(capacityVerdict(r)))</p>\n"
        if let first = r.steps.first {
            body += "<p class=\"meta\">\(escapeHTML(first.date)) · \(escapeHTML(first.machine))</p>\n"
            let c = first.configuration
            body +=
                "<section>\n<h2>Configuration</h2>\n"
                + keyValueTable([
                    ("relay", c.relay),
                    ("transport", c.transport),
                    ("duration per step", "\(ReportFormat.fixed(c.durationSeconds, 1)) s (ramp \(ReportFormat.fixed(c.rampSeconds, 1)) s)"),
                    ("audio", "\(c.audioFPS) frames/s × \(c.frameBytes) B"),
                    ("decrypt", c.decrypt),
                    ("pass when", "loss <= \(ReportFormat.trimmed(r.lossThresholdPercent))% and p99 <= \(ReportFormat.trimmed(r.p99ThresholdMs)) ms"),
                ]) + "</section>\n"
        }
        body += "<section>\n<h2>Steps</h2>\n" + stepsTable(r) + "</section>\n"

        let x = r.steps.map { Double($0.participantsTarget) }
        body += "<section>\n<h2>p99 latency per step</h2>\n"
        body +=
            SVGLineChart(
                title: "p99 latency per step",
                xLabel: "participants",
                yLabel: "ms",
                series: [.init(name: "p99", color: ChartColor.p99, x: x, y: r.steps.map(\.latency.p99Ms))],
                threshold: .init(label: "limit \(ReportFormat.trimmed(r.p99ThresholdMs)) ms", value: r.p99ThresholdMs),
                markers: true
            ).render() + "\n</section>\n"
        body += "<section>\n<h2>Loss per step</h2>\n"
        body +=
            SVGLineChart(
                title: "loss per step",
                xLabel: "participants",
                yLabel: "loss %",
                series: [.init(name: "loss %", color: ChartColor.loss, x: x, y: r.steps.map(\.lossPercent))],
                threshold: .init(label: "limit \(ReportFormat.trimmed(r.lossThresholdPercent))%", value: r.lossThresholdPercent),
                markers: true
            ).render() + "\n</section>\n"

        if let best = r.best {
            let step = r.bestStepNumber.map { "step \($0), " } ?? ""
            body += "<h2 class=\"part\">Highest passing step (\(step)\(best.participantsTarget) participants)</h2>\n"
            body += summarySections(best)
        }
        return page(title: "conclave load capacity report", body: body)
    }
}

// MARK: - Page parts

extension LoadReport {
    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escapeHTML(title))</title>
        <style>
        \(stylesheet)
        </style>
        </head>
        <body>
        <main>
        \(body)</main>
        </body>
        </html>

        """
    }

    static let stylesheet = """
        :root { color-scheme: light; }
        body { margin: 0; background: #f8fafc; color: #0f172a; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
        main { max-width: 780px; margin: 0 auto; padding: 24px 16px 48px; }
        h1 { font-size: 22px; margin: 0 0 4px; }
        h2 { font-size: 16px; margin: 28px 0 8px; }
        h2.part { font-size: 18px; margin-top: 40px; border-top: 1px solid #cbd5e1; padding-top: 16px; }
        .meta { color: #475569; margin: 0 0 8px; }
        .verdict { font-weight: 600; }
        .badge { display: inline-block; font-size: 13px; padding: 2px 8px; border-radius: 4px; vertical-align: middle; color: #fff; }
        .badge.pass, td.pass { background: #15803d; }
        .badge.fail, td.fail { background: #b91c1c; }
        td.pass, td.fail { color: #fff; font-weight: 600; }
        table { border-collapse: collapse; background: #fff; border: 1px solid #e2e8f0; }
        th, td { padding: 4px 12px; text-align: left; border-bottom: 1px solid #e2e8f0; font-variant-numeric: tabular-nums; }
        table.kv th { font-weight: 500; color: #334155; white-space: nowrap; }
        table.steps th { background: #f1f5f9; }
        table.steps td.num { text-align: right; }
        ul.errors { color: #b91c1c; padding-left: 20px; }
        svg.chart { display: block; max-width: 100%; height: auto; background: #fff; border: 1px solid #e2e8f0; }
        svg.chart text { font: 11px system-ui, sans-serif; fill: #334155; }
        svg.chart text.title { font-size: 12px; }
        svg.chart text.nodata { font-size: 16px; fill: #64748b; }
        svg.chart .grid line { stroke: #e2e8f0; }
        svg.chart .axis line { stroke: #64748b; }
        svg.chart .threshold line { stroke: #b91c1c; stroke-dasharray: 6 4; }
        svg.chart .threshold text { fill: #b91c1c; }
        """

    static func badge(_ passed: Bool) -> String {
        passed ? "<span class=\"badge pass\">PASS</span>" : "<span class=\"badge fail\">FAIL</span>"
    }

    /// Configuration, results, errors and the two timeline charts of one run.
    static func summarySections(_ s: LoadSummary) -> String {
        var out = "<section>\n<h2>Configuration</h2>\n" + keyValueTable(configurationRows(s)) + "</section>\n"
        out += "<section>\n<h2>Results</h2>\n" + keyValueTable(resultRows(s)) + "</section>\n"
        out += "<section>\n<h2>Errors</h2>\n"
        if s.errors.isEmpty {
            out += "<p>None.</p>\n"
        } else {
            out += "<ul class=\"errors\">\n"
            out += s.errors.map { "<li>\(escapeHTML($0))</li>\n" }.joined()
            out += "</ul>\n"
        }
        out += "</section>\n"

        let t = s.timeline.map(\.tSeconds)
        out += "<section>\n<h2>Throughput</h2>\n"
        out +=
            SVGLineChart(
                title: "throughput over time",
                xLabel: "time (s)",
                yLabel: "frames/s",
                series: [
                    .init(name: "sent/s", color: ChartColor.sent, x: t, y: s.timeline.map(\.sentPerSecond)),
                    .init(name: "received/s", color: ChartColor.received, x: t, y: s.timeline.map(\.receivedPerSecond)),
                ]
            ).render() + "\n</section>\n"
        out += "<section>\n<h2>Latency</h2>\n"
        out +=
            SVGLineChart(
                title: "end-to-end latency over time",
                xLabel: "time (s)",
                yLabel: "ms",
                series: [
                    .init(name: "p50", color: ChartColor.p50, x: t, y: s.timeline.map(\.p50Ms)),
                    .init(name: "p99", color: ChartColor.p99, x: t, y: s.timeline.map(\.p99Ms)),
                ]
            ).render() + "\n</section>\n"
        let sampled = s.timeline.filter { $0.relayRSSBytes != nil }
        if !sampled.isEmpty {
            let ts = sampled.map(\.tSeconds)
            out += "<section>\n<h2>Relay memory and descriptors</h2>\n"
            out +=
                SVGLineChart(
                    title: "relay resident memory over time",
                    xLabel: "time (s)",
                    yLabel: "MiB",
                    series: [.init(name: "RSS", color: ChartColor.sent, x: ts, y: sampled.map { Double($0.relayRSSBytes ?? 0) / 1_048_576 })]
                ).render() + "\n"
            out +=
                SVGLineChart(
                    title: "relay open file descriptors over time",
                    xLabel: "time (s)",
                    yLabel: "descriptors",
                    series: [.init(name: "open fds", color: ChartColor.received, x: ts, y: sampled.map { $0.relayOpenFDs.map(Double.init) ?? .nan })]
                ).render() + "\n</section>\n"
        }
        return out
    }

    static func keyValueTable(_ rows: [(String, String)]) -> String {
        var out = "<table class=\"kv\">\n<tbody>\n"
        for (label, value) in rows {
            let cls = label == "result" ? " class=\"\(value == "PASS" ? "pass" : "fail")\"" : ""
            out += "<tr><th scope=\"row\">\(escapeHTML(label))</th><td\(cls)>\(escapeHTML(value))</td></tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    static func stepsTable(_ r: CapacityResult) -> String {
        guard !r.steps.isEmpty else { return "<p>No steps ran.</p>\n" }
        var out = "<table class=\"steps\">\n<thead><tr>"
        for h in ["step", "rooms × per room", "connected", "loss", "p99", "relay CPU", "RSS/participant", "result"] {
            out += "<th scope=\"col\">\(escapeHTML(h))</th>"
        }
        out += "</tr></thead>\n<tbody>\n"
        for (i, s) in r.steps.enumerated() {
            let cells = [
                "\(i + 1)",
                "\(s.configuration.rooms) × \(s.configuration.perRoom)",
                "\(s.participantsConnected)/\(s.participantsTarget)",
                ReportFormat.fixed(s.lossPercent, 3) + "%",
                ReportFormat.fixed(s.latency.p99Ms, 2) + " ms",
                s.relayCPUPercent.map { ReportFormat.fixed($0, 1) + "%" } ?? "n/a",
                s.relayRSSPerParticipantBytes.map(ReportFormat.kib) ?? "n/a",
            ]
            out += "<tr>" + cells.map { "<td class=\"num\">\(escapeHTML($0))</td>" }.joined()
            out += s.passed ? "<td class=\"pass\">PASS</td>" : "<td class=\"fail\">FAIL</td>"
            out += "</tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    /// Escapes `s` for HTML text and attribute values.
    ///
    /// Besides `& < > " '`, the colon of an `http://` or `https://` scheme is written as
    /// `&#58;`: it renders the same, but the page source then never contains a URL, even
    /// when a relay address or an error message does.
    static func escapeHTML(_ s: String) -> String {
        let chars = Array(s)
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for (i, c) in chars.enumerated() {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case ":" where isHTTPSchemeColon(chars, i): out += "&#58;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Whether `chars[i]` is the colon of `http://` or `https://` (any case).
    private static func isHTTPSchemeColon(_ chars: [Character], _ i: Int) -> Bool {
        guard i + 2 < chars.count, chars[i + 1] == "/", chars[i + 2] == "/" else { return false }
        func endsWith(_ word: String) -> Bool {
            let n = word.count
            guard i >= n else { return false }
            return String(chars[(i - n)..<i]).lowercased() == word
        }
        return endsWith("http") || endsWith("https")
    }
}

// MARK: - Charts

enum ChartColor {
    static let sent = "#2563eb"
    static let received = "#16a34a"
    static let p50 = "#2563eb"
    static let p99 = "#dc2626"
    static let loss = "#9333ea"
}

/// An inline SVG line chart with axes, tick labels, a legend and an optional dashed
/// threshold line.
///
/// Points whose x or y is not finite are left out. With no points at all the chart says
/// "no data"; a single point (or all points at one x or one y) gets a padded axis range,
/// so no scale ever divides by zero. Each series is one `<polyline>` with one
/// `x,y` pair per plotted point.
struct SVGLineChart {
    struct Series {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]

        /// Pairs `x` and `y` up to the shorter of the two.
        init(name: String, color: String, x: [Double], y: [Double]) {
            self.name = name
            self.color = color
            self.points = zip(x, y).filter { $0.0.isFinite && $0.1.isFinite }.map { (x: $0.0, y: $0.1) }
        }
    }

    struct Threshold {
        var label: String
        var value: Double
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series]
    var threshold: Threshold? = nil
    /// Draw a dot at every point (single points always get one).
    var markers: Bool = false

    static let width = 720.0
    static let height = 300.0
    static let left = 64.0
    static let right = 24.0
    static let top = 36.0
    static let bottom = 48.0

    func render() -> String {
        let w = Self.width, h = Self.height
        let plotW = w - Self.left - Self.right
        let plotH = h - Self.top - Self.bottom
        var out =
            "<svg class=\"chart\" viewBox=\"0 0 \(n(w)) \(n(h))\" width=\"\(n(w))\" height=\"\(n(h))\""
            + " role=\"img\" aria-label=\"\(LoadReport.escapeHTML(title))\">\n"
        out += "<text class=\"title\" x=\"\(n(Self.left))\" y=\"16\">\(LoadReport.escapeHTML(title))</text>\n"

        let all = series.flatMap(\.points)
        guard !all.isEmpty else {
            out +=
                "<rect x=\"\(n(Self.left))\" y=\"\(n(Self.top))\" width=\"\(n(plotW))\" height=\"\(n(plotH))\""
                + " fill=\"none\" stroke=\"#cbd5e1\"/>\n"
            out +=
                "<text class=\"nodata\" x=\"\(n(Self.left + plotW / 2))\" y=\"\(n(Self.top + plotH / 2))\""
                + " text-anchor=\"middle\" dominant-baseline=\"middle\">no data</text>\n"
            return out + "</svg>"
        }

        // Ranges: y always includes zero (and the threshold); degenerate ranges are padded.
        var xMin = all.map(\.x).min()!, xMax = all.map(\.x).max()!
        if !(xMax - xMin > 0) {
            let pad = max(1, abs(xMin) * 0.1)
            xMin -= pad
            xMax += pad
        }
        var yMin = min(0, all.map(\.y).min()!), yMax = max(0, all.map(\.y).max()!)
        if let t = threshold, t.value.isFinite {
            yMin = min(yMin, t.value)
            yMax = max(yMax, t.value * 1.1)
        }
        if !(yMax - yMin > 0) { yMax = yMin + 1 }
        let yStep = Self.niceStep((yMax - yMin) / 5)
        yMin = (yMin / yStep).rounded(.down) * yStep
        yMax = (yMax / yStep).rounded(.up) * yStep
        if !(yMax - yMin > 0) { yMax = yMin + yStep }
        let xStep = Self.niceStep((xMax - xMin) / 6)

        let sx = { (x: Double) in Self.left + (x - xMin) / (xMax - xMin) * plotW }
        let sy = { (y: Double) in Self.top + plotH - (y - yMin) / (yMax - yMin) * plotH }
        let x0 = Self.left, x1 = Self.left + plotW, y0 = Self.top + plotH, y1 = Self.top

        // Grid and tick labels.
        var grid = "<g class=\"grid\">\n"
        var axis = "<g class=\"axis\">\n"
        for y in Self.ticks(from: yMin, to: yMax, step: yStep) {
            let py = sy(y)
            grid += "<line x1=\"\(n(x0))\" y1=\"\(n(py))\" x2=\"\(n(x1))\" y2=\"\(n(py))\"/>\n"
            axis += "<line x1=\"\(n(x0 - 4))\" y1=\"\(n(py))\" x2=\"\(n(x0))\" y2=\"\(n(py))\"/>"
            axis +=
                "<text x=\"\(n(x0 - 7))\" y=\"\(n(py))\" text-anchor=\"end\" dominant-baseline=\"middle\">"
                + "\(Self.tickLabel(y, step: yStep))</text>\n"
        }
        for x in Self.ticks(from: xMin, to: xMax, step: xStep) {
            let px = sx(x)
            grid += "<line x1=\"\(n(px))\" y1=\"\(n(y1))\" x2=\"\(n(px))\" y2=\"\(n(y0))\"/>\n"
            axis += "<line x1=\"\(n(px))\" y1=\"\(n(y0))\" x2=\"\(n(px))\" y2=\"\(n(y0 + 4))\"/>"
            axis += "<text x=\"\(n(px))\" y=\"\(n(y0 + 16))\" text-anchor=\"middle\">\(Self.tickLabel(x, step: xStep))</text>\n"
        }
        axis += "<line x1=\"\(n(x0))\" y1=\"\(n(y0))\" x2=\"\(n(x1))\" y2=\"\(n(y0))\"/>\n"
        axis += "<line x1=\"\(n(x0))\" y1=\"\(n(y0))\" x2=\"\(n(x0))\" y2=\"\(n(y1))\"/>\n"
        axis +=
            "<text x=\"\(n(x0 + plotW / 2))\" y=\"\(n(h - 8))\" text-anchor=\"middle\">"
            + "\(LoadReport.escapeHTML(xLabel))</text>\n"
        axis +=
            "<text transform=\"translate(14 \(n(y1 + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">"
            + "\(LoadReport.escapeHTML(yLabel))</text>\n"
        out += grid + "</g>\n" + axis + "</g>\n"

        if let t = threshold, t.value.isFinite {
            let py = sy(t.value)
            out += "<g class=\"threshold\"><line x1=\"\(n(x0))\" y1=\"\(n(py))\" x2=\"\(n(x1))\" y2=\"\(n(py))\"/>"
            out += "<text x=\"\(n(x1 - 4))\" y=\"\(n(py - 5))\" text-anchor=\"end\">\(LoadReport.escapeHTML(t.label))</text></g>\n"
        }

        // Series.
        for s in series where !s.points.isEmpty {
            let coords = s.points.map { "\(n(sx($0.x))),\(n(sy($0.y)))" }.joined(separator: " ")
            out +=
                "<polyline class=\"series\" data-series=\"\(LoadReport.escapeHTML(s.name))\" fill=\"none\""
                + " stroke=\"\(s.color)\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"\(coords)\"/>\n"
            if markers || s.points.count == 1 {
                for p in s.points {
                    out += "<circle cx=\"\(n(sx(p.x)))\" cy=\"\(n(sy(p.y)))\" r=\"3.5\" fill=\"\(s.color)\"/>\n"
                }
            }
        }

        // Legend, above the plot on the right.
        var lx = x1
        var legend = ""
        for s in series.reversed() {
            let textWidth = Double(s.name.count) * 7
            lx -= textWidth + 26
            legend += "<line x1=\"\(n(lx))\" y1=\"24\" x2=\"\(n(lx + 16))\" y2=\"24\" stroke=\"\(s.color)\" stroke-width=\"3\"/>"
            legend += "<text x=\"\(n(lx + 20))\" y=\"24\" dominant-baseline=\"middle\">\(LoadReport.escapeHTML(s.name))</text>\n"
        }
        out += "<g class=\"legend\">\n" + legend + "</g>\n"
        return out + "</svg>"
    }

    /// A coordinate with one decimal.
    private func n(_ v: Double) -> String { ReportFormat.trimmed(v, 1) }

    /// A tick value with as many decimals as the step needs: 60k, 2.5, 0.002.
    static func tickLabel(_ v: Double, step: Double) -> String {
        guard step < 1 else { return ReportFormat.compact(v) }
        let digits = min(12, Int(-log10(step).rounded(.down)) + 1)
        return ReportFormat.trimmed(v, digits)
    }

    /// 1, 2 or 5 times a power of ten, at least `raw` (1 for a non-positive or non-finite `raw`).
    static func niceStep(_ raw: Double) -> Double {
        guard raw.isFinite, raw > 0 else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let f = raw / magnitude
        let nice: Double = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10
        return nice * magnitude
    }

    /// Multiples of `step` within `[from, to]`, at most 100 of them.
    static func ticks(from: Double, to: Double, step: Double) -> [Double] {
        guard step > 0, step.isFinite, from.isFinite, to.isFinite else { return [] }
        var out: [Double] = []
        var i = (from / step - 1e-9).rounded(.up)
        while out.count < 100 {
            let v = i * step
            if v > to + step * 1e-9 { break }
            out.append(v)
            i += 1
        }
        return out
    }
}
