// swift-tools-version: 6.1
// The benchmarks, in a package of their own (as swift-nio keeps its Benchmarks/), so that
// building the product resolves neither ordo-one/benchmark nor swift-crypto:
//
//   cd Benchmarks
//   swift package benchmark --target CryptoHotPath        # ordo-one suites (thresholds in Thresholds/)
//   swift run -c release crypto-compare [--json]          # the four AEAD paths side by side
//
// ordo-one's package-benchmark (STYLE.md §6) with only the MallocInterposer trait: the
// default "RuntimeInterposer" trait would pull in ordo-one/swift-runtime-interposer, which
// the local package mirror does not carry.
import PackageDescription

let package = Package(
    name: "ConclaveBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Conclave", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        // Only the comparison path uses swift-crypto: the "what a Swift developer would
        // reach for" baseline (ChaChaPoly) that the frame cipher is compared with.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // The measurement defaults every suite shares.
        .target(name: "BenchmarkSupport", dependencies: [.product(name: "Benchmark", package: "benchmark")]),
        .target(
            name: "ComparisonPaths",
            dependencies: [
                .product(name: "ConclaveBench", package: "Conclave"),
                .product(name: "ConclaveCrypto", package: "Conclave"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "crypto-compare",
            dependencies: ["ComparisonPaths", .product(name: "ConclaveBench", package: "Conclave")]
        ),
        .executableTarget(
            name: "CryptoHotPath",
            dependencies: [
                "ComparisonPaths", "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ConclaveBench", package: "Conclave"),
                .product(name: "ConclaveCrypto", package: "Conclave"),
                .product(name: "ConclaveProtocol", package: "Conclave"),
            ],
            path: "Benchmarks/CryptoHotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RelayForwarding",
            dependencies: ["BenchmarkSupport", .product(name: "Benchmark", package: "benchmark"), .product(name: "ConclaveRelay", package: "Conclave")],
            path: "Benchmarks/RelayForwarding",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
