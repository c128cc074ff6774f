import Foundation
import Testing
@testable import ConclaveLoad

@Suite("Load report rendering")
struct LoadReportTests {
    // MARK: Fixtures

    static func configuration(relay: String = "ws://127.0.0.1:7443", rooms: Int = 10, perRoom: Int = 30) -> LoadConfiguration {
        LoadConfiguration(
            relay: relay, rooms: rooms, perRoom: perRoom, durationSeconds: 30, rampSeconds: 5,
            transport: "udp", audioFPS: 50, frameBytes: 160, decrypt: "sample:10"
        )
    }

    static func timeline(_ count: Int) -> [LoadSample] {
        var samples: [LoadSample] = []
        for i in 0..<count {
            let d = Double(i)
            samples.append(
                LoadSample(
                    tSeconds: d + 1, connected: 300, sentPerSecond: 15_000 + d,
                    receivedPerSecond: 435_000 - d, lossPercent: 0.01,
                    p50Ms: 1.5 + d / 10, p99Ms: 4.2 + d / 10
                ))
        }
        return samples
    }

    static func summary(
        relay: String = "ws://127.0.0.1:7443",
        rooms: Int = 10,
        perRoom: Int = 30,
        loss: Double = 0.05,
        p99: Double = 4.2,
        rekey: Double? = nil,
        relayCPU: Double? = 56.5,
        timeline: [LoadSample] = timeline(5),
        passed: Bool = true,
        errors: [String] = []
    ) -> LoadSummary {
        var s = LoadSummary(
            configuration: configuration(relay: relay, rooms: rooms, perRoom: perRoom),
            date: "2025-01-02T03:04:05Z", machine: "2 vCPU, Linux",
            participantsTarget: rooms * perRoom, participantsConnected: rooms * perRoom - 2,
            udpParticipants: rooms * perRoom - 2, wsParticipants: 0,
            framesSent: 450_000, framesExpected: 13_050_000, framesReceived: 13_043_475, lossPercent: loss,
            duplicates: 3, decryptFailures: 1, framesDecrypted: 1_304_347,
            latency: LatencyPercentiles(count: 13_043_475, p50Ms: 1.25, p90Ms: 2.5, p99Ms: p99, p999Ms: 9.75, maxMs: 31),
            joinP50Ms: 12, joinP99Ms: 48.5, rekeyAfterRemovalMs: rekey,
            runnerCPUPercent: 143.25, relayCPUPercent: relayCPU, relayRSSBytes: 50_331_648,
            relayRSSPerParticipantBytes: 168_443,
            timeline: timeline, passed: passed, errors: errors
        )
        s.clientQueues.staleAudioDropped = 4_321
        s.clientQueues.mediaOverflowDropped = 12
        s.clientQueues.lateAudioDropped = 7
        s.clientQueues.peakQueuedMedia = 1_024
        s.clientQueues.mediaLimit = 1_024
        s.clientQueues.peakQueuedControl = 270
        s.clientQueues.controlHighWatermark = 256
        return s
    }

    static func parse(_ json: String) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return try #require(object as? [String: Any])
    }

    /// The `points` attribute of the polyline whose `data-series` is `name`, split into pairs.
    static func polylinePoints(_ html: String, series name: String) throws -> [String] {
        let marker = "data-series=\"\(name)\""
        let start = try #require(html.range(of: marker))
        let rest = html[start.upperBound...]
        let pointsStart = try #require(rest.range(of: "points=\""))
        let afterPoints = rest[pointsStart.upperBound...]
        let end = try #require(afterPoints.firstIndex(of: "\""))
        return afterPoints[..<end].split(separator: " ").map(String.init)
    }

    /// Every numeric SVG attribute (coordinates, sizes, polyline points) holds finite numbers.
    static func svgNumbersAreFinite(_ html: String) -> Bool {
        let numeric: Set<Substring> = ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "points"]
        let attribute = /([a-z0-9-]+)="([^"]*)"/
        var checked = 0
        for match in html.matches(of: attribute) where numeric.contains(match.output.1) {
            let tokens = match.output.2.split(whereSeparator: { $0 == " " || $0 == "," })
            for token in tokens {
                guard let v = Double(token), v.isFinite else { return false }
            }
            checked += 1
        }
        return checked > 0
    }

    static func occurrences(of needle: String, in haystack: String) -> Int {
        haystack.components(separatedBy: needle).count - 1
    }

    // MARK: Client CPU per frame

    @Test func clientCPUPerFrameIsTheRunnerCPUOverTheBareCrypto() throws {
        // 10 000 seals at 0.5 µs and 40 000 opens at 0.75 µs: 0.035 s of bare crypto.
        let c = ClientCPUPerFrame(
            runnerCPUSeconds: 0.105, runnerUserCPUSeconds: 0.07, framesSealed: 10_000, framesOpened: 40_000, bareSealMicros: 0.5, bareOpenMicros: 0.75)
        #expect(abs(c.bareCPUSeconds - 0.035) < 1e-12)
        #expect(abs(c.ratio - 3.0) < 1e-9)
        #expect(abs(c.runnerMicrosPerOperation - 2.1) < 1e-9)
        #expect(abs(c.userRatio - 2.0) < 1e-9)
        var s = Self.summary()
        s.clientCPU = c
        let table = LoadReport.table(s)
        let line = try #require(table.split(separator: "\n").first { $0.hasPrefix("runner CPU per frame") })
        #expect(line.contains("2.10 µs per seal or open = 3.00× the bare crypto (user space alone 2.00×"))
        let o = try Self.parse(LoadReport.json(s))
        let cpu = try #require(o["client_cpu_per_frame"] as? [String: Any])
        #expect((cpu["ratio_to_bare_crypto"] as? Double).map { abs($0 - 3) < 1e-9 } == true)
        #expect(cpu["frames_opened"] as? Int == 40_000)
        // Without a measurement: null, and "not measured" in the table.
        #expect(try Self.parse(LoadReport.json(Self.summary()))["client_cpu_per_frame"] is NSNull)
    }

    // MARK: Progress line

    @Test func progressLineFormat() {
        let sample = LoadSample(
            tSeconds: 12, connected: 300, sentPerSecond: 15_000, receivedPerSecond: 60_000,
            lossPercent: 0, p50Ms: 1.2, p99Ms: 3.14
        )
        #expect(LoadReport.progressLine(sample) == "t=12s connected=300 sent=15000/s recv=60000/s loss=0.00% p99=3.1ms")
    }

    @Test func progressLineSurvivesNonFiniteValues() {
        let sample = LoadSample(
            tSeconds: .nan, connected: 0, sentPerSecond: .infinity, receivedPerSecond: 0,
            lossPercent: .nan, p50Ms: 0, p99Ms: .nan
        )
        #expect(LoadReport.progressLine(sample) == "t=n/as connected=0 sent=n/a/s recv=0/s loss=n/a% p99=n/ams")
    }

    // MARK: Text table

    @Test func tableShowsEveryFigure() throws {
        let table = LoadReport.table(Self.summary(loss: 0.05, p99: 4.2, errors: ["2 participants failed to join: timeout"]))
        #expect(table.contains("0.050%"))
        #expect(table.contains("4.20 ms"))
        #expect(table.contains("298/300 connected (udp 298, ws 0)"))
        #expect(table.contains("13,050,000"))
        #expect(table.contains("9.75 ms"))  // p99.9
        #expect(table.contains("12.00 ms / 48.50 ms"))
        #expect(table.contains("143.2%") || table.contains("143.3%"))
        #expect(table.contains("56.5%"))
        #expect(table.contains("48.0 MiB"))
        #expect(table.contains("164.5 KiB"))
        #expect(table.contains("PASS"))
        #expect(table.contains("2 participants failed to join: timeout"))
        #expect(table.contains("4,321 stale audio, 12 over the queue limit, 7 late"))
        #expect(table.contains("media 1024 (limit 1024), control 270 (reads pause at 256)"))
        // Nil rekey reads "not measured".
        let rekeyLine = try #require(table.split(separator: "\n").first { $0.hasPrefix("rekey after removal") })
        #expect(rekeyLine.hasSuffix("not measured"))
    }

    @Test func tableValuesAreAligned() throws {
        let lines = LoadReport.table(Self.summary()).split(separator: "\n")
        let lossLine = try #require(lines.first { $0.hasPrefix("loss ") })
        let relayLine = try #require(lines.first { $0.hasPrefix("relay ") })
        // Values start where the value "0.050%" / "ws://" starts.
        let lossColumn = try #require(lossLine.range(of: "0.050%")).lowerBound
        let relayColumn = try #require(relayLine.range(of: "ws://")).lowerBound
        #expect(
            lossLine.distance(from: lossLine.startIndex, to: lossColumn)
                == relayLine.distance(from: relayLine.startIndex, to: relayColumn))
    }

    @Test func tableShowsMeasuredRekeyAndFailure() {
        let table = LoadReport.table(Self.summary(rekey: 87.5, relayCPU: nil, passed: false))
        #expect(table.contains("87.50 ms"))
        #expect(table.contains("FAIL"))
        #expect(!table.contains("PASS"))
        let relayCPULine = table.split(separator: "\n").first { $0.hasPrefix("relay CPU") }
        #expect(relayCPULine?.hasSuffix("not measured") == true)
    }

    // MARK: Capacity table

    static func capacity(bestIndex: Int?) -> CapacityResult {
        let steps = [
            summary(rooms: 5, perRoom: 20, loss: 0, p99: 2, passed: true),
            summary(rooms: 10, perRoom: 20, loss: 0.02, p99: 6.5, passed: true),
            summary(rooms: 20, perRoom: 20, loss: 3.5, p99: 45, passed: false),
        ]
        return CapacityResult(
            steps: steps, best: bestIndex.map { steps[$0] }, lossThresholdPercent: 0.1, p99ThresholdMs: 20
        )
    }

    @Test func capacityTableNamesTheBestStep() throws {
        let text = LoadReport.capacityTable(Self.capacity(bestIndex: 1))
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1 + 3 + 1)  // header, steps, verdict (blank line omitted by split)
        #expect(lines[1].hasSuffix("PASS") && lines[3].hasSuffix("FAIL"))
        #expect(lines[3].contains("3.500%") && lines[3].contains("45.00 ms"))
        let last = try #require(lines.last)
        #expect(last.hasPrefix("highest passing step: step 2: 200 participants (10 rooms × 20)"))
        #expect(last.contains("p99 6.50 ms"))
    }

    @Test func capacityTableSaysWhenNothingPassed() throws {
        let text = LoadReport.capacityTable(Self.capacity(bestIndex: nil))
        let last = try #require(text.split(separator: "\n").last)
        #expect(last == "no step passed (loss <= 0.1%, p99 <= 20 ms)")
    }

    // MARK: JSON

    @Test func summaryJSONRoundTrips() throws {
        let s = Self.summary(relay: "ws://h/\"q\"\\\n", loss: 0.05, p99: 4.2, errors: ["boom \"x\""])
        let json = LoadReport.json(s)
        #expect(!json.contains("\n"))
        #expect(json.hasPrefix("{\"date\":"))
        let o = try Self.parse(json)
        #expect(o["date"] as? String == "2025-01-02T03:04:05Z")
        #expect(o["passed"] as? Bool == true)
        #expect((o["loss_percent"] as? NSNumber)?.doubleValue == 0.05)
        #expect((o["frames_expected"] as? NSNumber)?.uint64Value == 13_050_000)
        #expect((o["relay_rss_per_participant_bytes"] as? NSNumber)?.uint64Value == 168_443)
        #expect(o["errors"] as? [String] == ["boom \"x\""])
        let config = try #require(o["configuration"] as? [String: Any])
        #expect(config["relay"] as? String == "ws://h/\"q\"\\\n")
        #expect((config["per_room"] as? NSNumber)?.intValue == 30)
        #expect(config["decrypt"] as? String == "sample:10")
        let latency = try #require(o["latency_ms"] as? [String: Any])
        #expect((latency["p99"] as? NSNumber)?.doubleValue == 4.2)
        #expect((latency["p999"] as? NSNumber)?.doubleValue == 9.75)
        let queues = try #require(o["client_queues"] as? [String: Any])
        #expect((queues["stale_audio_dropped"] as? NSNumber)?.uint64Value == 4_321)
        #expect((queues["media_overflow_dropped"] as? NSNumber)?.uint64Value == 12)
        #expect((queues["late_audio_dropped"] as? NSNumber)?.uint64Value == 7)
        #expect((queues["peak_queued_media"] as? NSNumber)?.intValue == 1_024)
        #expect((queues["media_limit"] as? NSNumber)?.intValue == 1_024)
        #expect((queues["peak_queued_control"] as? NSNumber)?.intValue == 270)
        #expect((queues["control_high_watermark"] as? NSNumber)?.intValue == 256)
        let timeline = try #require(o["timeline"] as? [[String: Any]])
        #expect(timeline.count == 5)
        #expect((timeline[0]["t"] as? NSNumber)?.doubleValue == 1)
        #expect((timeline[4]["sent_per_second"] as? NSNumber)?.doubleValue == 15_004)
    }

    @Test func jsonKeyOrderIsStable() {
        let json = LoadReport.json(Self.summary())
        let keys = [
            "\"date\"", "\"machine\"", "\"passed\"", "\"configuration\"", "\"participants_target\"",
            "\"frames_sent\"", "\"loss_percent\"", "\"latency_ms\"", "\"rekey_after_removal_ms\"",
            "\"relay_rss_per_participant_bytes\"", "\"errors\"", "\"timeline\"",
        ]
        let positions = keys.compactMap { json.range(of: $0)?.lowerBound }
        #expect(positions.count == keys.count)
        #expect(positions == positions.sorted())
        #expect(LoadReport.json(Self.summary()) == json)
    }

    @Test func nilAndNonFiniteBecomeNull() throws {
        var s = Self.summary(rekey: nil, relayCPU: nil)
        s.lossPercent = .nan
        s.latency.maxMs = .infinity
        s.relayRSSBytes = nil
        s.timeline[0].p99Ms = -.infinity
        let json = LoadReport.json(s)
        #expect(json.contains("\"rekey_after_removal_ms\":null"))
        #expect(json.contains("\"loss_percent\":null"))
        #expect(json.contains("\"relay_cpu_percent\":null"))
        #expect(!json.lowercased().contains("nan") && !json.lowercased().contains("inf"))
        let o = try Self.parse(json)
        #expect(o["rekey_after_removal_ms"] is NSNull)
        #expect(o["loss_percent"] is NSNull)
        #expect(o["relay_rss_bytes"] is NSNull)
        let latency = try #require(o["latency_ms"] as? [String: Any])
        #expect(latency["max"] is NSNull)
        let timeline = try #require(o["timeline"] as? [[String: Any]])
        #expect(timeline[0]["p99_ms"] is NSNull)
    }

    @Test func measuredRekeyIsANumber() throws {
        let o = try Self.parse(LoadReport.json(Self.summary(rekey: 87.5)))
        #expect((o["rekey_after_removal_ms"] as? NSNumber)?.doubleValue == 87.5)
    }

    @Test func jsonNumbersAreRoundedAndValid() {
        #expect(LoadReport.jsonNumber(0.1 + 0.2) == "0.3")
        #expect(LoadReport.jsonNumber(-0.0000001) == "0.0")
        #expect(LoadReport.jsonNumber(.nan) == "null")
        #expect(LoadReport.jsonNumber(3) == "3.0")
    }

    @Test func capacityJSON() throws {
        let json = LoadReport.json(Self.capacity(bestIndex: 1))
        #expect(json.hasPrefix("{\"find_capacity\":true,\"loss_threshold_percent\":0.1,\"p99_threshold_ms\":20.0,\"best\":{"))
        #expect(!json.contains("\n"))
        let o = try Self.parse(json)
        #expect(o["find_capacity"] as? Bool == true)
        let best = try #require(o["best"] as? [String: Any])
        #expect((best["participants_target"] as? NSNumber)?.intValue == 200)
        let steps = try #require(o["steps"] as? [[String: Any]])
        #expect(steps.count == 3)
        #expect(steps[2]["passed"] as? Bool == false)

        let none = try Self.parse(LoadReport.json(Self.capacity(bestIndex: nil)))
        #expect(none["best"] is NSNull)
    }

    // MARK: HTML

    @Test func htmlIsSelfContainedAndEscaped() {
        let relay = "ws://evil<script>&\"'/"
        let html = LoadReport.html(Self.summary(relay: relay, errors: ["<b>bad</b> & worse"]))
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("</html>"))
        #expect(html.contains("<style>"))
        #expect(html.contains("<svg"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(!html.lowercased().contains("<script"))
        #expect(html.contains("ws://evil&lt;script&gt;&amp;&quot;&#39;/"))
        #expect(!html.contains(relay))
        #expect(html.contains("&lt;b&gt;bad&lt;/b&gt; &amp; worse"))
        #expect(!html.contains("<b>"))
    }

    @Test func htmlNeutralisesURLsFromData() {
        let html = LoadReport.html(Self.summary(relay: "HTTPS://relay.example", errors: ["see http://x/y"]))
        #expect(!html.lowercased().contains("http://") && !html.lowercased().contains("https://"))
        #expect(html.contains("HTTPS&#58;//relay.example"))
        #expect(LoadReport.escapeHTML("ws://a:1") == "ws://a:1")
    }

    @Test func htmlPolylinesHaveOnePointPerSample() throws {
        let html = LoadReport.html(Self.summary(timeline: Self.timeline(17)))
        #expect(Self.occurrences(of: "<svg", in: html) == 2)
        for name in ["sent/s", "received/s", "p50", "p99"] {
            let points = try Self.polylinePoints(html, series: name)
            #expect(points.count == 17, "series \(name)")
            for pair in points {
                let xy = pair.split(separator: ",").compactMap { Double($0) }
                #expect(xy.count == 2 && xy.allSatisfy(\.isFinite), "bad point \(pair)")
                if xy.count == 2 {
                    #expect((0...SVGLineChart.width).contains(xy[0]) && (0...SVGLineChart.height).contains(xy[1]))
                }
            }
        }
        // Legends and axes.
        #expect(html.contains(">sent/s</text>") && html.contains(">received/s</text>"))
        #expect(html.contains(">time (s)</text>") && html.contains(">frames/s</text>"))
        #expect(!html.contains("no data"))
    }

    @Test func relaySamplesGoToTheTimelineAndTheMemoryChart() throws {
        var timeline = Self.timeline(25)
        for i in stride(from: 0, to: 25, by: 10) {
            timeline[i].relayRSSBytes = 20_971_520 + UInt64(i) * 4_096
            timeline[i].relayOpenFDs = 612 + i
        }
        let s = Self.summary(timeline: timeline)
        let o = try Self.parse(LoadReport.json(s))
        let t = try #require(o["timeline"] as? [[String: Any]])
        #expect((t[10]["relay_rss_bytes"] as? NSNumber)?.uint64Value == 20_971_520 + 40_960)
        #expect((t[20]["relay_open_fds"] as? NSNumber)?.intValue == 632)
        #expect(t[1]["relay_rss_bytes"] == nil, "seconds without a sample have no relay fields")
        let html = LoadReport.html(s)
        #expect(html.contains("relay resident memory over time") && html.contains("relay open file descriptors over time"))
        #expect(try Self.polylinePoints(html, series: "RSS").count == 3)
        #expect(Self.svgNumbersAreFinite(html))
        // Without samples there is no memory chart.
        #expect(!LoadReport.html(Self.summary()).contains("relay resident memory"))
    }

    @Test func htmlHandlesEmptyTimeline() {
        let html = LoadReport.html(Self.summary(timeline: []))
        #expect(Self.occurrences(of: "no data", in: html) == 2)
        #expect(!html.contains("<polyline"))
        #expect(Self.svgNumbersAreFinite(html))
    }

    @Test func htmlHandlesSinglePointAndFlatLines() throws {
        let single = LoadReport.html(Self.summary(timeline: Self.timeline(1)))
        #expect(try Self.polylinePoints(single, series: "p99").count == 1)
        #expect(single.contains("<circle"))
        #expect(Self.svgNumbersAreFinite(single))

        let flat = (0..<4).map {
            LoadSample(
                tSeconds: Double($0), connected: 0, sentPerSecond: 0, receivedPerSecond: 0,
                lossPercent: 0, p50Ms: 0, p99Ms: 0)
        }
        let html = LoadReport.html(Self.summary(timeline: flat))
        #expect(try Self.polylinePoints(html, series: "sent/s").count == 4)
        #expect(Self.svgNumbersAreFinite(html))
    }

    @Test func htmlSkipsNonFiniteSamples() throws {
        var timeline = Self.timeline(3)
        timeline[1].p99Ms = .nan
        let html = LoadReport.html(Self.summary(timeline: timeline))
        #expect(try Self.polylinePoints(html, series: "p99").count == 2)
        #expect(try Self.polylinePoints(html, series: "p50").count == 3)
        #expect(Self.svgNumbersAreFinite(html))
    }

    @Test func capacityHTML() throws {
        let html = LoadReport.html(Self.capacity(bestIndex: 1))
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("http://") && !html.contains("https://") && !html.lowercased().contains("<script"))
        // Two step charts plus the best step's two timeline charts.
        #expect(Self.occurrences(of: "<svg", in: html) == 4)
        let p99PerStep = try Self.polylinePoints(html, series: "p99")  // first p99 series is the step chart
        #expect(p99PerStep.count == 3)
        #expect(try Self.polylinePoints(html, series: "loss %").count == 3)
        #expect(html.contains("limit 20 ms") && html.contains("limit 0.1%"))
        #expect(html.contains("highest passing step: step 2"))

        let empty = LoadReport.html(CapacityResult(steps: [], best: nil, lossThresholdPercent: 0.1, p99ThresholdMs: 20))
        #expect(Self.occurrences(of: "no data", in: empty) == 2)
        #expect(empty.contains("no step passed"))
    }

    // MARK: Chart helpers

    @Test func niceStepsAndTicks() {
        #expect(SVGLineChart.niceStep(0) == 1)
        #expect(SVGLineChart.niceStep(.nan) == 1)
        #expect(SVGLineChart.niceStep(3) == 5)
        #expect(SVGLineChart.niceStep(12_000) == 20_000)
        #expect(SVGLineChart.ticks(from: 0, to: 10, step: 2.5) == [0, 2.5, 5, 7.5, 10])
        #expect(SVGLineChart.ticks(from: 0, to: 1, step: 0).isEmpty)
        #expect(SVGLineChart.tickLabel(60_000, step: 10_000) == "60k")
        #expect(SVGLineChart.tickLabel(0.002, step: 0.001) == "0.002")
        #expect(!Self.svgNumbersAreFinite("<svg><circle cx=\"n/a\" cy=\"1\"/></svg>"))
        #expect(!Self.svgNumbersAreFinite("<polyline points=\"1,2 nan,3\"/>"))
        #expect(Self.svgNumbersAreFinite("<polyline points=\"1,2 3.5,3\"/>"))
    }
}
