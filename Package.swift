// swift-tools-version: 6.1
import PackageDescription

/// NIO, TLS and logging: what the relay, the client and their tests share.
let webSocketStack: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
    .product(name: "NIOHTTP1", package: "swift-nio"),
    .product(name: "NIOWebSocket", package: "swift-nio"),
    .product(name: "NIOSSL", package: "swift-nio-ssl"),
    .product(name: "Logging", package: "swift-log"),
]

let package = Package(
    name: "Conclave",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ConclaveCrypto", targets: ["ConclaveCrypto"]),
        .library(name: "ConclaveMedia", targets: ["ConclaveMedia"]),
        .library(name: "ConclaveProtocol", targets: ["ConclaveProtocol"]),
        .library(name: "ConclaveRelay", targets: ["ConclaveRelay"]),
        .library(name: "ConclaveRelayConfiguration", targets: ["ConclaveRelayConfiguration"]),
        .library(name: "ConclaveClient", targets: ["ConclaveClient"]),
        .library(name: "ConclaveRedis", targets: ["ConclaveRedis"]),
        // The crypto bench's paths and runner, for the benchmark package (Benchmarks/).
        .library(name: "ConclaveBench", targets: ["ConclaveBench"]),
        .executable(name: "conclave", targets: ["conclave"]),
        .executable(name: "conclave-relay", targets: ["conclave-relay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
    ],
    targets: [
        // MARK: C libraries
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        .systemLibrary(
            name: "COpus",
            pkgConfig: "opus",
            providers: [.apt(["libopus-dev"]), .brew(["opus"])]
        ),

        // MARK: Libraries
        .target(name: "ConclaveCrypto", dependencies: ["CSodium"]),
        // recvmmsg/sendmmsg for the relay's media sockets (not visible through Glibc).
        .target(name: "CConclaveUDP"),
        .target(name: "ConclaveMedia", dependencies: ["COpus"]),
        .target(name: "ConclaveProtocol", dependencies: ["ConclaveCrypto"]),
        // Child processes that outlive a call (the demo's relay; the tests' relays, Redis
        // servers and participants), on swift-subprocess.
        .target(name: "ConclaveChildProcess", dependencies: [.product(name: "Subprocess", package: "swift-subprocess")]),
        // Local files and /proc/self through swift-system (no Glibc file calls elsewhere).
        .target(name: "ConclaveSystem", dependencies: [.product(name: "SystemPackage", package: "swift-system")]),
        // The relay's options and config-file parser on their own, without the network
        // stack: the config-file fuzz target links this alone.
        .target(name: "ConclaveRelayConfiguration", dependencies: ["ConclaveProtocol", "ConclaveCrypto"]),
        .target(
            name: "ConclaveRelay",
            dependencies: ["ConclaveProtocol", "ConclaveCrypto", "ConclaveRelayConfiguration", "ConclaveRedis", "ConclaveSystem", "CConclaveUDP"]
                + webSocketStack + [
                    .product(name: "NIOEmbedded", package: "swift-nio"),
                    .product(name: "Metrics", package: "swift-metrics"),
                    .product(name: "Prometheus", package: "swift-prometheus"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                ]
        ),
        // A small Redis client on SwiftNIO (RESP2/3, pipelining, pub/sub, reconnection):
        // the store and bus of a relay cluster.
        .target(
            name: "ConclaveRedis",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "ConclaveClient",
            dependencies: ["ConclaveProtocol", "ConclaveCrypto", "ConclaveMedia", "ConclaveSystem"] + webSocketStack
        ),
        .target(
            name: "ConclaveLoad",
            dependencies: [
                "ConclaveClient", "ConclaveProtocol", "ConclaveCrypto", "ConclaveMedia", "ConclaveChildProcess", "ConclaveSystem", "ConclaveBench",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ] + webSocketStack
        ),
        // `conclave bench crypto`'s runner and its two product paths (frame cipher,
        // libsodium). The comparisons with swift-crypto live in Benchmarks/.
        .target(name: "ConclaveBench", dependencies: ["ConclaveCrypto", "ConclaveProtocol", "CSodium"]),

        // MARK: Executables
        // The participant. It does not link the relay: the demo and `bench relay` start
        // `conclave-relay` as a child process.
        .executableTarget(
            name: "conclave",
            dependencies: [
                "ConclaveCrypto", "ConclaveProtocol", "ConclaveMedia", "ConclaveBench", "ConclaveClient", "ConclaveLoad", "ConclaveChildProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "conclave-relay",
            dependencies: [
                "ConclaveProtocol", "ConclaveRelay", "ConclaveRedis", "ConclaveSystem",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: Tests
        .testTarget(name: "ConclaveCryptoTests", dependencies: ["ConclaveCrypto", "CSodium", "ConclaveTestSupport"]),
        .testTarget(name: "ConclaveMediaTests", dependencies: ["ConclaveMedia"]),
        // Helpers the test targets share: the live relay starter, real servers (Redis), waiters
        // with deadlines, certificates, loopback ports, the repository's paths.
        .target(
            name: "ConclaveTestSupport",
            dependencies: [
                "ConclaveRedis", "ConclaveMedia", "ConclaveRelay", "ConclaveClient", "ConclaveLoad", "ConclaveChildProcess", "ConclaveSystem",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ConclaveTestSupport"
        ),
        .testTarget(
            name: "ConclaveRedisTests",
            dependencies: [
                "ConclaveRedis", "ConclaveSystem", "ConclaveTestSupport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ConclaveLoadTests",
            dependencies: [
                "ConclaveLoad", "ConclaveRelay", "ConclaveClient", "ConclaveProtocol", "ConclaveTestSupport",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ConclaveClientTests",
            dependencies: [
                "ConclaveClient", "ConclaveRelay", "ConclaveProtocol", "ConclaveCrypto", "ConclaveMedia", "ConclaveTestSupport", "ConclaveChildProcess",
                "conclave-relay", "conclave",
            ] + webSocketStack
        ),
        .testTarget(
            name: "ConclaveRelayTests",
            dependencies: [
                "ConclaveRelay", "ConclaveClient", "ConclaveProtocol", "ConclaveCrypto", "ConclaveRedis", "ConclaveTestSupport", "ConclaveChildProcess",
                "conclave-relay",
            ]
                + webSocketStack
                + [.product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(
            name: "ConclaveProtocolTests",
            dependencies: ["ConclaveProtocol", "ConclaveCrypto", "CSodium", "ConclaveTestSupport"],
            resources: []
        ),
    ]
)

// MARK: Benchmarks
// The ordo-one suites and the swift-crypto comparison are a
// package of their own in Benchmarks/ (its Package.swift), so that building the product
// resolves neither ordo-one/benchmark nor swift-crypto.
