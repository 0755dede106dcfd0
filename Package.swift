// swift-tools-version:6.0
import PackageDescription

// llama.cpp comes from the pinned sdist build in the cache (scripts/deps.sh); the Makefile points
// PKG_CONFIG_PATH at it, so `pkg-config llama` resolves to exactly that build.
let package = Package(
    name: "lookaheadd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lookaheadctl", targets: ["lookaheadctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(name: "CLlama", pkgConfig: "llama"),
        .systemLibrary(name: "CJSONC", pkgConfig: "json-c"),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd"),
        .target(name: "SystemdSupport", dependencies: ["CSystemd"]),
        .target(name: "Llama", dependencies: ["CLlama"]),
        .target(name: "Lookahead", dependencies: ["Llama"]),
        .target(name: "StepBatcher", dependencies: ["Lookahead", "Llama"]),
        .target(name: "LookaheadProtocol", dependencies: ["CJSONC", .product(name: "NIOCore", package: "swift-nio")]),
        .executableTarget(
            name: "lookaheadctl",
            dependencies: [
                "Llama", "Lookahead", "StepBatcher",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "LlamaTests", dependencies: ["Llama"]),
        .testTarget(name: "SystemdSupportTests", dependencies: ["SystemdSupport"]),
        .testTarget(name: "LookaheadTests", dependencies: ["Lookahead", "StepBatcher", "Llama"]),
        .testTarget(
            name: "LookaheadProtocolTests",
            dependencies: [
                "LookaheadProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
