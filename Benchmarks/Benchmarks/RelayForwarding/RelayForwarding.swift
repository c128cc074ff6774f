// The relay's UDP forwarding path in process, without sockets (issue 5).
//
//   cd Benchmarks && swift package benchmark --target RelayForwarding
//
// Each iteration routes 1000 sealed MEDIA datagrams (scalingFactor .kilo) from one member
// of a room of 2, 5 or 10 through RelayCore.mediaDatagram: parse, session look-up, hop tag
// (ChaCha20-Poly1305 over 13 + 168 bytes), replay window, address check, rate limits,
// room policy, and the fan-out into a reused target list. Throughput is datagrams routed
// per second; multiply by (room size - 1) for forwarded packets. What is not here: the
// socket reads and sendmmsg writes, which `conclave bench relay` measures on loopback.
// mallocCountTotal must be 0: the forwarding path allocates nothing per packet.

import Benchmark
import BenchmarkSupport
@_spi(Benchmarking) import ConclaveRelay

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .conclave
    for size in [2, 5, 10] {
        Benchmark("route_160B_datagram_room_of_\(size)") { benchmark, harness in
            var delivered = 0
            for _ in benchmark.scaledIterations { delivered &+= harness.route() }
            blackHole(delivered)
        } setup: {
            try RelayForwardingHarness(roomSize: size)
        }
    }
}
