import CoreMetrics
import Synchronization
import Prometheus
import ConclaveProtocol
import ConclaveSystem
#if canImport(Glibc)
import Glibc
#endif

/// The relay's metrics, exposed at `/metrics` in Prometheus text format.
///
/// Metrics are counts and gauges only: no room ids, no identities, no payloads. Each relay
/// instance owns its own registry (so tests can run several relays in one process); the
/// handles are created once so the per-frame path only increments atomics.
public final class RelayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    /// TCP connections: upgraded and not yet upgraded.
    let connections: CoreMetrics.Gauge
    /// TCP connections accepted and not yet upgraded to a WebSocket.
    let pendingConnections: CoreMetrics.Gauge
    let rooms: CoreMetrics.Gauge
    let participants: CoreMetrics.Gauge
    let waiting: CoreMetrics.Gauge
    let framesForwarded: [FrameKind: CoreMetrics.Counter]
    let bytesForwarded: CoreMetrics.Counter
    let deliveries: CoreMetrics.Counter
    let framesDropped: [String: CoreMetrics.Counter]
    let outboundMediaDropped: CoreMetrics.Counter
    let slowConsumerDisconnects: CoreMetrics.Counter
    let protocolErrors: [ErrorCode: CoreMetrics.Counter]
    let limitHits: [String: CoreMetrics.Counter]
    let joins: [String: CoreMetrics.Counter]
    let roomsCreated: CoreMetrics.Counter
    // UDP media path.
    let mediaSessions: CoreMetrics.Gauge
    let udpDeliveries: CoreMetrics.Counter
    let udpAddressChanges: CoreMetrics.Counter
    let udpKeepalives: CoreMetrics.Counter
    /// Relay → client datagrams the kernel refused (send buffer full): dropped, not queued.
    let udpSendDropped: CoreMetrics.Counter
    let udpDroppedByReason: [String: CoreMetrics.Counter]
    static let udpDropReasons = [
        "malformed", "unknown_kind", "unknown_session", "bad_tag", "replayed", "kind", "too_large",
        "rate_limited", "not_admitted", "muted", "not_presenter", "unvalidated_address", "path_response", "other",
    ]
    /// The largest outbound queue any single connection has held, in bytes (a gauge of the
    /// worst case, which the slow-consumer limit bounds).
    let peakOutboundQueueBytes = Atomic<Int>(0)
    let peakOutboundGauge: CoreMetrics.Gauge
    // Cluster (zero on a single relay).
    let clusterNodes: CoreMetrics.Gauge
    let clusterRoomsOwned: CoreMetrics.Gauge
    let clusterRedirects: CoreMetrics.Counter
    let clusterRehomes: CoreMetrics.Counter
    let clusterRedisErrors: CoreMetrics.Counter
    let clusterRedisLatency: CoreMetrics.Timer

    static let limitNames = [
        "frames_per_second", "bytes_per_second", "control_per_second", "frame_size", "rooms",
        "connections", "participants", "waiting", "join_attempts", "password_failures",
        "idle_timeout", "handshake_timeout", "outbound_queue", "pending_per_address", "room_creations",
    ]
    static let joinResults = ["waiting", "admitted", "refused", "bad_password", "rate_limited", "redirected"]

    public init() {
        registry = PrometheusCollectorRegistry()
        factory = PrometheusMetricsFactory(registry: registry)
        let f = factory
        connections = CoreMetrics.Gauge(label: "conclave_relay_connections", factory: f)
        clusterNodes = CoreMetrics.Gauge(label: "conclave_cluster_nodes", factory: f)
        clusterRoomsOwned = CoreMetrics.Gauge(label: "conclave_cluster_rooms_owned", factory: f)
        clusterRedirects = CoreMetrics.Counter(label: "conclave_cluster_redirects_total", factory: f)
        clusterRehomes = CoreMetrics.Counter(label: "conclave_cluster_rehomes_total", factory: f)
        clusterRedisErrors = CoreMetrics.Counter(label: "conclave_cluster_redis_errors_total", factory: f)
        clusterRedisLatency = CoreMetrics.Timer(label: "conclave_cluster_redis_latency_seconds", factory: f)
        pendingConnections = CoreMetrics.Gauge(label: "conclave_relay_pending_connections", factory: f)
        rooms = CoreMetrics.Gauge(label: "conclave_relay_rooms", factory: f)
        participants = CoreMetrics.Gauge(label: "conclave_relay_participants", factory: f)
        waiting = CoreMetrics.Gauge(label: "conclave_relay_waiting", factory: f)
        framesForwarded = Dictionary(
            uniqueKeysWithValues: FrameKind.allCases.map {
                ($0, CoreMetrics.Counter(label: "conclave_relay_frames_received_total", dimensions: [("kind", $0.name)], factory: f))
            })
        bytesForwarded = CoreMetrics.Counter(label: "conclave_relay_frame_bytes_received_total", factory: f)
        deliveries = CoreMetrics.Counter(label: "conclave_relay_frame_deliveries_total", factory: f)
        var dropped: [String: CoreMetrics.Counter] = [:]
        for reason in ["muted", "not_presenter", "not_leader", "unknown_recipient", "rate_limited", "other"] {
            dropped[reason] = CoreMetrics.Counter(label: "conclave_relay_frames_dropped_total", dimensions: [("reason", reason)], factory: f)
        }
        framesDropped = dropped
        outboundMediaDropped = CoreMetrics.Counter(label: "conclave_relay_outbound_media_dropped_total", factory: f)
        slowConsumerDisconnects = CoreMetrics.Counter(label: "conclave_relay_slow_consumer_disconnects_total", factory: f)
        protocolErrors = Dictionary(
            uniqueKeysWithValues: ErrorCode.wireCodes.map {
                ($0, CoreMetrics.Counter(label: "conclave_relay_errors_sent_total", dimensions: [("code", $0.name)], factory: f))
            })
        limitHits = Dictionary(
            uniqueKeysWithValues: Self.limitNames.map {
                ($0, CoreMetrics.Counter(label: "conclave_relay_limit_hits_total", dimensions: [("limit", $0)], factory: f))
            })
        joins = Dictionary(
            uniqueKeysWithValues: Self.joinResults.map {
                ($0, CoreMetrics.Counter(label: "conclave_relay_joins_total", dimensions: [("result", $0)], factory: f))
            })
        roomsCreated = CoreMetrics.Counter(label: "conclave_relay_rooms_created_total", factory: f)
        mediaSessions = CoreMetrics.Gauge(label: "conclave_relay_media_sessions", factory: f)
        udpDeliveries = CoreMetrics.Counter(label: "conclave_relay_udp_deliveries_total", factory: f)
        udpAddressChanges = CoreMetrics.Counter(label: "conclave_relay_udp_address_changes_total", factory: f)
        udpKeepalives = CoreMetrics.Counter(label: "conclave_relay_udp_keepalives_total", factory: f)
        udpSendDropped = CoreMetrics.Counter(label: "conclave_relay_udp_send_dropped_total", factory: f)
        udpDroppedByReason = Dictionary(
            uniqueKeysWithValues: Self.udpDropReasons.map {
                ($0, CoreMetrics.Counter(label: "conclave_relay_udp_dropped_total", dimensions: [("reason", $0)], factory: f))
            })
        peakOutboundGauge = CoreMetrics.Gauge(label: "conclave_relay_outbound_queue_peak_bytes", factory: f)
    }

    func noteQueued(_ bytes: Int) {
        var current = peakOutboundQueueBytes.load(ordering: .relaxed)
        while bytes > current {
            let (exchanged, original) = peakOutboundQueueBytes.compareExchange(expected: current, desired: bytes, ordering: .relaxed)
            if exchanged { peakOutboundGauge.record(bytes); return }
            current = original
        }
    }

    /// The largest outbound queue seen on one connection.
    public var peakOutboundQueue: Int { peakOutboundQueueBytes.load(ordering: .relaxed) }

    func limitHit(_ name: String) { limitHits[name]?.increment() }
    func udpDropped(_ reason: String) { (udpDroppedByReason[reason] ?? udpDroppedByReason["other"])?.increment() }
    func dropped(_ reason: String) { (framesDropped[reason] ?? framesDropped["other"])?.increment() }
    func errorSent(_ code: ErrorCode) { protocolErrors[code]?.increment() }

    /// The Prometheus text exposition, with process CPU, resident memory and open file
    /// descriptors appended.
    public func render() -> [UInt8] {
        var out = registry.emitToBuffer()
        let (cpu, rss) = ProcessStats.read()
        out += Array(
            """
            # TYPE process_cpu_seconds_total counter
            process_cpu_seconds_total \(cpu)
            # TYPE process_resident_memory_bytes gauge
            process_resident_memory_bytes \(rss)
            # TYPE process_open_fds gauge
            process_open_fds \(ProcessStats.openDescriptors())

            """.utf8)
        return out
    }
}

/// CPU seconds (user + system) and resident set size of this process.
public enum ProcessStats {
    public static func read() -> (cpuSeconds: Double, residentBytes: Int) {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        return (cpu, residentBytes())
    }

    /// Open file descriptors: the entries of /proc/self/fd, less the one reading it; 0
    /// where unavailable.
    public static func openDescriptors() -> Int {
        #if os(Linux)
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] == UInt8(ascii: ".") }
            if !isDot { count += 1 }
        }
        return max(0, count - 1)
        #else
        return 0
        #endif
    }

    /// From /proc/self/statm (pages × page size); 0 where unavailable.
    public static func residentBytes() -> Int {
        ProcessFigures.residentBytes(pageSize: Int(sysconf(Int32(_SC_PAGESIZE)))) ?? 0
    }
}
