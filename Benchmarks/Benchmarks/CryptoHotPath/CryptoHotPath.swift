// The per-frame crypto hot path under ordo-one's package-benchmark (STYLE.md §4, §6).
//
//   cd Benchmarks && swift package benchmark --target CryptoHotPath
//
// Every benchmark iteration seals and then opens 1000 frames (scalingFactor .kilo) with a
// 22-byte AAD (Conclave's SFrame metadata size). Buffers, keys and nonces are set up in
// `setup`, outside the measurement, and `setup` checks one round trip before anything
// is measured.
//
// Reading the output: throughput is always round trips (frames) per second. Rows marked
// `*` (wall clock, mallocs) are scaled to one frame by default; with `--scale` (its help
// text says the opposite, but in 1.38.1 it switches scaling off) they are per iteration,
// i.e. per 1000 round trips. Prove "no allocation" from the unscaled view, where even one
// malloc per iteration would show: `mallocCountTotal` must be 0 for "frame-cipher",
// "libsodium" and "SFrameKey" (the allocating path shows 3000, swift-crypto 16000).
//
// The four paths are `ConclaveBench.CryptoBench`'s contenders (see its doc comment): the
// frame cipher and libsodium from the product, swift-crypto and the allocating wrapper
// from this package's ComparisonPaths. One copy of each exists.

import Benchmark
import BenchmarkSupport
import ComparisonPaths
import ConclaveBench
import ConclaveCrypto
import ConclaveProtocol

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .conclave

    // One iteration seals a batch of 1000 frames, then opens them (scalingFactor .kilo:
    // the batch is `scaledIterations`). The runners are `CryptoBench`'s own: the same code
    // `conclave bench crypto` and `crypto-compare` measure, checked before the first
    // iteration (round trip, forgery refused, frame cipher byte-identical to libsodium).
    for size in [64, 160, 1200] {
        for contender in CryptoBench.Contender.all {
            Benchmark("seal+open_\(size)B_\(contender.path)") { (benchmark: Benchmark, runner: any RoundTripPath) in
                precondition(benchmark.scaledIterations.count == batch, "the batch is one scaled iteration's worth of frames")
                try runner.sealBatch()
                try runner.openBatch()
            } setup: { () throws -> any RoundTripPath in
                try CryptoBench.quickSelfCheck(sizes: [size], aadLength: aadLength, contenders: [.libsodium, contender].uniqued)
                return try contender.makeRunner(inputs: .random(plaintextLength: size, aadLength: aadLength), batch: batch)
            }
        }
    }

    Benchmark("seal+open_160B_SFrameKey") { benchmark, path in
        for _ in benchmark.scaledIterations { try path.roundTrip() }
    } setup: {
        try SFrameKeyRoundTrip(size: 160)
    }

    // The participant's whole per-frame path: SenderKeyState picks the epoch key, counter
    // and metadata and seals; ReceiverKeyRing parses the KID, checks the replay window,
    // opens and records the counter. mallocCountTotal must be 0 here too.
    Benchmark("seal+open_160B_E2E_sender-receiver") { benchmark, path in
        for _ in benchmark.scaledIterations { try path.roundTrip() }
    } setup: {
        try E2ERoundTrip(size: 160)
    }
}

// MARK: - Shared inputs

let aadLength = 22
let tagLength = 16
/// Frames per iteration (scalingFactor .kilo).
let batch = 1_000

extension Array where Element == CryptoBench.Contender {
    /// The contenders without repeats, in order.
    var uniqued: [CryptoBench.Contender] {
        var seen: [CryptoBench.Contender] = []
        for c in self where !seen.contains(c) { seen.append(c) }
        return seen
    }
}

enum HotPathError: Error, CustomStringConvertible {
    case roundTripMismatch(String)

    var description: String {
        switch self {
        case let .roundTripMismatch(path): "\(path): opened frame differs from the plaintext"
        }
    }
}

/// A heap buffer that outlives every call that borrows it.
final class Buffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = .allocate(byteCount: count, alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    convenience init(copying source: [UInt8], capacity: Int? = nil) {
        self.init(count: capacity ?? source.count)
        source.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    deinit { bytes.deallocate() }

    var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }
    var u8: UnsafeMutablePointer<UInt8> { bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) }
    func prefix(_ n: Int) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: bytes[0..<n]) }
}

// MARK: - SFrameKey: header encoding, AAD assembly, nonce, seal/open into caller buffers

final class SFrameKeyRoundTrip {
    let key: SFrameKey
    let plaintext: Buffer
    let frame: Buffer
    let output: Buffer
    let metadata: Buffer
    let size: Int
    /// A realistic counter: an hour of 20 ms audio frames is ~180 000, a 3-byte CTR.
    var counter: UInt64 = 0x1_0000

    init(size: Int) throws {
        self.size = size
        key = try SFrameKey(suite: .conclaveXChaCha20Poly1305SHA256, baseKey: .random(), keyID: 7)
        plaintext = Buffer(copying: SecureRandom.bytes(count: size))
        frame = Buffer(count: SFrameHeader.maximumEncodedLength + size + tagLength)
        output = Buffer(count: size)
        metadata = Buffer(copying: SecureRandom.bytes(count: aadLength))
        try roundTrip()
        guard output.bytes.elementsEqual(plaintext.bytes) else { throw HotPathError.roundTripMismatch("SFrameKey") }
    }

    @inline(__always)
    func roundTrip() throws {
        let length = try key.seal(counter: counter, metadata: metadata.readOnly, plaintext: plaintext.readOnly, into: frame.bytes)
        let opened = try key.open(frame: UnsafeRawBufferPointer(frame.prefix(length)), metadata: metadata.readOnly, into: output.bytes)
        counter &+= 1
        blackHole(opened)
    }
}

// MARK: - The end-to-end per-frame path of a participant

final class E2ERoundTrip {
    var sender: SenderKeyState
    var receiver: ReceiverKeyRing
    let header: FrameHeader
    let plaintext: Buffer
    let frame: Buffer
    let output: Buffer
    /// Past the sender's 250 ms switch, so the epoch is active.
    let now: UInt64 = 1_000

    init(size: Int) throws {
        let room = RoomID(bytes: SecureRandom.bytes(count: 16))!
        let a = PrivateIdentity.generate(), b = PrivateIdentity.generate()
        let members = [RosterMember(index: 1, identity: a.publicIdentity), RosterMember(index: 2, identity: b.publicIdentity)]
        let secret = SecretKey.random()
        sender = SenderKeyState(roomID: room, me: 1, identity: a)
        sender.install(epoch: 1, secret: secret, now: 0)
        sender.setPeers(members)
        receiver = ReceiverKeyRing(roomID: room, me: 2, identity: b)
        _ = receiver.install(epoch: 1, secret: secret, members: members, now: 0)
        header = try FrameHeader(kind: .audio, sender: 1, recipient: .everyone)
        plaintext = Buffer(copying: SecureRandom.bytes(count: size))
        frame = Buffer(count: SFrameHeader.maximumEncodedLength + size + tagLength)
        output = Buffer(count: SFrameHeader.maximumEncodedLength + size + tagLength)
        try roundTrip()
        guard output.bytes.prefix(size).elementsEqual(plaintext.bytes) else { throw HotPathError.roundTripMismatch("E2E") }
    }

    @inline(__always)
    func roundTrip() throws {
        let length = try sender.seal(kind: .audio, recipient: .everyone, plaintext: plaintext.readOnly, into: frame.bytes, now: now)
        let outcome = receiver.open(header: header, payload: UnsafeRawBufferPointer(frame.prefix(length)), into: output.bytes, now: now)
        guard case .opened = outcome else { throw HotPathError.roundTripMismatch("E2E: \(outcome)") }
    }
}
