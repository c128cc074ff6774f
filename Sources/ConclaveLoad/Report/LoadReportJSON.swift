import ConclaveClient

// MARK: - JSON

extension LoadReport {
    /// The summary as one JSON object on one line (no trailing newline).
    ///
    /// Keys are snake_case and always appear in the same order; a nil optional and a
    /// non-finite number are `null`; `timeline` is an array of per-second objects.
    public static func json(_ s: LoadSummary) -> String {
        var o = JSONObjectWriter()
        o.field("date", s.date)
        o.field("machine", s.machine)
        o.field("passed", s.passed)
        o.raw("configuration", json(s.configuration))
        o.field("participants_target", s.participantsTarget)
        o.field("participants_connected", s.participantsConnected)
        o.field("udp_participants", s.udpParticipants)
        o.field("ws_participants", s.wsParticipants)
        o.field("frames_sent", s.framesSent)
        o.field("frames_expected", s.framesExpected)
        o.field("frames_received", s.framesReceived)
        o.field("loss_percent", s.lossPercent)
        o.field("duplicates", s.duplicates)
        o.field("decrypt_failures", s.decryptFailures)
        o.field("frames_decrypted", s.framesDecrypted)
        o.raw("client_queues", json(s.clientQueues))
        o.raw("latency_ms", json(s.latency))
        o.field("join_p50_ms", s.joinP50Ms)
        o.field("join_p99_ms", s.joinP99Ms)
        o.field("rekey_after_removal_ms", s.rekeyAfterRemovalMs)
        o.field("runner_cpu_percent", s.runnerCPUPercent)
        o.raw("client_cpu_per_frame", s.clientCPU.map(json) ?? "null")
        o.field("relay_cpu_percent", s.relayCPUPercent)
        o.field("relay_rss_bytes", s.relayRSSBytes)
        o.field("relay_rss_per_participant_bytes", s.relayRSSPerParticipantBytes)
        o.raw("errors", "[" + s.errors.map(EventOutput.quote).joined(separator: ",") + "]")
        o.raw("timeline", "[" + s.timeline.map(json).joined(separator: ",") + "]")
        return o.finish()
    }

    /// The `--find-capacity` result as one JSON object on one line:
    /// `{"find_capacity":true,"loss_threshold_percent":…,"p99_threshold_ms":…,"best":{…}|null,"steps":[…]}`.
    public static func json(_ r: CapacityResult) -> String {
        var o = JSONObjectWriter()
        o.field("find_capacity", true)
        o.field("loss_threshold_percent", r.lossThresholdPercent)
        o.field("p99_threshold_ms", r.p99ThresholdMs)
        o.raw("best", r.best.map { json($0) } ?? "null")
        o.raw("steps", "[" + r.steps.map { json($0) }.joined(separator: ",") + "]")
        return o.finish()
    }

    static func json(_ c: ClientCPUPerFrame) -> String {
        var o = JSONObjectWriter()
        o.field("runner_cpu_seconds", c.runnerCPUSeconds)
        o.field("runner_user_cpu_seconds", c.runnerUserCPUSeconds)
        o.field("frames_sealed", c.framesSealed)
        o.field("frames_opened", c.framesOpened)
        o.field("runner_us_per_operation", c.runnerMicrosPerOperation)
        o.field("bare_seal_us", c.bareSealMicros)
        o.field("bare_open_us", c.bareOpenMicros)
        o.field("bare_cpu_seconds", c.bareCPUSeconds)
        o.field("ratio_to_bare_crypto", c.ratio)
        o.field("user_ratio_to_bare_crypto", c.userRatio)
        return o.finish()
    }

    static func json(_ q: ClientQueueSummary) -> String {
        var o = JSONObjectWriter()
        o.field("stale_audio_dropped", q.staleAudioDropped)
        o.field("media_overflow_dropped", q.mediaOverflowDropped)
        o.field("late_audio_dropped", q.lateAudioDropped)
        o.field("peak_queued_media", q.peakQueuedMedia)
        o.field("media_limit", q.mediaLimit)
        o.field("peak_queued_control", q.peakQueuedControl)
        o.field("control_high_watermark", q.controlHighWatermark)
        return o.finish()
    }

    static func json(_ c: LoadConfiguration) -> String {
        var o = JSONObjectWriter()
        o.field("relay", c.relay)
        o.field("rooms", c.rooms)
        o.field("per_room", c.perRoom)
        o.field("duration_seconds", c.durationSeconds)
        o.field("ramp_seconds", c.rampSeconds)
        o.field("transport", c.transport)
        o.field("audio_fps", c.audioFPS)
        o.field("frame_bytes", c.frameBytes)
        o.field("decrypt", c.decrypt)
        o.field("talkers_per_room", c.talkers)
        return o.finish()
    }

    static func json(_ l: LatencyPercentiles) -> String {
        var o = JSONObjectWriter()
        o.field("count", l.count)
        o.field("p50", l.p50Ms)
        o.field("p90", l.p90Ms)
        o.field("p99", l.p99Ms)
        o.field("p999", l.p999Ms)
        o.field("max", l.maxMs)
        return o.finish()
    }

    static func json(_ t: LoadSample) -> String {
        var o = JSONObjectWriter()
        o.field("t", t.tSeconds)
        o.field("connected", t.connected)
        o.field("sent_per_second", t.sentPerSecond)
        o.field("received_per_second", t.receivedPerSecond)
        o.field("loss_percent", t.lossPercent)
        o.field("p50_ms", t.p50Ms)
        o.field("p99_ms", t.p99Ms)
        if let rss = t.relayRSSBytes { o.field("relay_rss_bytes", rss) }
        if let fds = t.relayOpenFDs { o.field("relay_open_fds", fds) }
        return o.finish()
    }

    /// A JSON number for `x`, or `null` when it is NaN or infinite. Values are rounded to
    /// six decimals so that `0.1 + 0.2` prints as `0.3`.
    static func jsonNumber(_ x: Double) -> String {
        guard x.isFinite else { return "null" }
        guard abs(x) < 1e15 else { return "\(x)" }
        let rounded = (x * 1_000_000).rounded() / 1_000_000
        return "\(rounded == 0 ? 0 : rounded)"  // no "-0.0"
    }
}

/// Writes one JSON object with keys in the order they are added.
struct JSONObjectWriter {
    private var out = "{"
    private var empty = true

    private mutating func key(_ k: String) {
        if !empty { out += "," }
        empty = false
        out += EventOutput.quote(k) + ":"
    }

    /// `value` must already be valid JSON.
    mutating func raw(_ k: String, _ value: String) {
        key(k)
        out += value
    }

    mutating func field(_ k: String, _ v: String) { raw(k, EventOutput.quote(v)) }
    mutating func field(_ k: String, _ v: Bool) { raw(k, v ? "true" : "false") }
    mutating func field(_ k: String, _ v: Int?) { raw(k, v.map { "\($0)" } ?? "null") }
    mutating func field(_ k: String, _ v: UInt64?) { raw(k, v.map { "\($0)" } ?? "null") }
    mutating func field(_ k: String, _ v: Double?) { raw(k, v.map(LoadReport.jsonNumber) ?? "null") }

    func finish() -> String { out + "}" }
}
