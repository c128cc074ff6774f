// swift-tools-version:6.0
// libFuzzer targets for every decoder of untrusted bytes in ConclaveProtocol, WAV files and
// the relay's config file.
// Build and run them with `bash scripts/fuzz.sh [SECONDS]` (it passes
// `-sanitize=fuzzer,address`); a plain `swift build` here builds nothing useful.
import PackageDescription

let names = [
    "ClientMessage", "RelayMessage", "FrameHeader", "SFrameHeader", "ControlMessage",
    "KeyPackage", "KeyWrap", "Knock", "MediaDatagram", "Invite",
]

let package = Package(
    name: "ConclaveFuzz",
    dependencies: [
        .package(name: "Conclave", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzSupport"),
        .executableTarget(
            name: "FuzzWAV", dependencies: ["FuzzSupport", .product(name: "ConclaveMedia", package: "Conclave")],
            path: "Sources/FuzzWAV"),
        .executableTarget(
            name: "FuzzRelayConfig",
            dependencies: ["FuzzSupport", .product(name: "ConclaveRelayConfiguration", package: "Conclave")],
            path: "Sources/FuzzRelayConfig"),
        .executableTarget(
            name: "FuzzRESP",
            dependencies: [
                "FuzzSupport", .product(name: "ConclaveRedis", package: "Conclave"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Sources/FuzzRESP"),
    ]
        + names.map { name in
            .executableTarget(
                name: "Fuzz\(name)",
                dependencies: [
                    "FuzzSupport",
                    .product(name: "ConclaveProtocol", package: "Conclave"),
                    .product(name: "ConclaveCrypto", package: "Conclave"),
                ],
                path: "Sources/Fuzz\(name)")
        }
)
