// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Conclave",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "ConclaveCrypto", targets: ["ConclaveCrypto"]),
        .library(name: "ConclaveMedia", targets: ["ConclaveMedia"]),
        .library(name: "ConclaveProtocol", targets: ["ConclaveProtocol"]),
        .executable(name: "conclave", targets: ["conclave"]),
        .executable(name: "conclave-relay", targets: ["conclave-relay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // Only the crypto bench uses swift-crypto: it is the "what a Swift developer
        // would reach for" baseline (ChaChaPoly) that the frame cipher is compared with.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
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
        .target(name: "ConclaveMedia", dependencies: ["COpus"]),
        .target(name: "ConclaveProtocol", dependencies: ["ConclaveCrypto"]),
        .target(
            name: "ConclaveBench",
            dependencies: [
                "ConclaveCrypto", "ConclaveProtocol", "CSodium",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // MARK: Executables
        .executableTarget(
            name: "conclave",
            dependencies: [
                "ConclaveCrypto", "ConclaveProtocol", "ConclaveMedia", "ConclaveBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "conclave-relay",
            dependencies: [
                "ConclaveProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: Tests
        .testTarget(name: "ConclaveCryptoTests", dependencies: ["ConclaveCrypto", "CSodium"]),
        .testTarget(name: "ConclaveMediaTests", dependencies: ["ConclaveMedia"]),
        .testTarget(
            name: "ConclaveProtocolTests",
            dependencies: ["ConclaveProtocol", "ConclaveCrypto"],
            resources: []
        ),
    ]
)
