import NIOCore
import ConclaveClient
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// The relay's process figures, read from its `/metrics` over loopback HTTP.
struct RelayProcessSample: Sendable {
    var cpuSeconds: Double
    var residentBytes: UInt64
    /// `process_open_fds`, when the relay reports it.
    var openDescriptors: Int?
    /// Datagrams the relay handed to the kernel for clients (`conclave_relay_udp_deliveries_total`
    /// less `conclave_relay_udp_send_dropped_total`), when it reports them.
    var udpSent: Double?
    var at: ContinuousClock.Instant

    /// The sum over several relays (the nodes of a cluster); nil when one does not answer.
    static func readAll(_ relays: [RelayEndpoint]) async -> RelayProcessSample? {
        var total: RelayProcessSample?
        for r in relays {
            guard let s = await read(host: r.host, port: r.port) else { return nil }
            if var t = total {
                t.cpuSeconds += s.cpuSeconds
                t.residentBytes += s.residentBytes
                t.openDescriptors = t.openDescriptors.flatMap { a in s.openDescriptors.map { a + $0 } }
                total = t
            } else {
                total = s
            }
        }
        return total
    }

    /// GET http://host:port/metrics; nil when the relay does not answer within 2 s.
    static func read(host: String, port: Int) async -> RelayProcessSample? {
        guard let response = try? await PlainHTTP.get(host: host, port: port, path: "/metrics"), response.status == 200 else { return nil }
        let text = response.body
        var cpu: Double?, rss: UInt64?, fds: Int?, deliveries: Double?, refused: Double?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("conclave_relay_udp_deliveries_total ") { deliveries = Double(line.split(separator: " ").last!) }
            if line.hasPrefix("conclave_relay_udp_send_dropped_total ") { refused = Double(line.split(separator: " ").last!) }
            if line.hasPrefix("process_open_fds ") { fds = Int(line.split(separator: " ").last!) }
            if line.hasPrefix("process_cpu_seconds_total ") { cpu = Double(line.split(separator: " ").last!) }
            if line.hasPrefix("process_resident_memory_bytes ") { rss = UInt64(line.split(separator: " ").last!) }
        }
        guard let cpu, let rss else { return nil }
        return RelayProcessSample(
            cpuSeconds: cpu, residentBytes: rss, openDescriptors: fds, udpSent: deliveries.map { $0 - (refused ?? 0) }, at: .now)
    }
}

/// This process's CPU time (user + system), in seconds.
/// This process's user-space CPU time alone, in seconds (the rest of ``processCPUSeconds()``
/// is the kernel's: system calls, the network stack).
func processUserCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
}

func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}
