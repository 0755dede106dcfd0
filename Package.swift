// swift-tools-version:6.0
import PackageDescription

// llama.cpp comes from the pinned sdist build in the cache (scripts/deps.sh); the Makefile points
// PKG_CONFIG_PATH at it, so `pkg-config llama` resolves to exactly that build.
let package = Package(
    name: "lookaheadd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lookaheadctl", targets: ["lookaheadctl"]),
        .executable(name: "lookaheadd", targets: ["lookaheadd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CLlama", pkgConfig: "llama"),
        .systemLibrary(name: "CJSONC", pkgConfig: "json-c"),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3"),
        // The bottom: the wire protocol (plain values and the json-c codec) and the job store know
        // nothing of models or transports, so clients and the store build without llama.cpp.
        .target(name: "LookaheadProtocol", dependencies: ["CJSONC"]),
        // OpenAI's request and response shapes over the native ones: no transport, no model code.
        .target(name: "OpenAIProtocol", dependencies: ["LookaheadProtocol"]),
        // The store validates OpenAI Batch lines with the same translation as the HTTP surface.
        .target(name: "JobStore", dependencies: ["CSQLite", "LookaheadProtocol", "OpenAIProtocol"]),
        .target(name: "SystemdSupport", dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]),
        // The model stack: C shims → Llama → Lookahead (the algorithm) → StepBatcher (the engine thread).
        .target(name: "Llama", dependencies: ["CLlama", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Lookahead", dependencies: ["Llama"]),
        .target(name: "StepBatcher", dependencies: [
            "Lookahead", "Llama", .product(name: "Logging", package: "swift-log"), .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        .target(name: "DaemonConfig", dependencies: ["Lookahead", "StepBatcher", "LookaheadProtocol"]),
        .target(name: "LookaheadBench", dependencies: ["Llama", "Lookahead", "StepBatcher", "LookaheadProtocol"]),
        .target(
            name: "LookaheadDaemon",
            dependencies: [
                "Llama", "Lookahead", "StepBatcher", "LookaheadProtocol", "OpenAIProtocol", "DaemonConfig", "SystemdSupport", "JobStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "lookaheadd",
            dependencies: [
                "LookaheadDaemon", "DaemonConfig", "StepBatcher", "SystemdSupport", "LookaheadProtocol", "Llama",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "lookaheadctl",
            dependencies: [
                "Llama", "Lookahead", "StepBatcher", "LookaheadProtocol", "LookaheadBench", "LookaheadDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "LlamaTests", dependencies: ["Llama", "TestSupport"]),
        // What the test suites share: temp directories, sockets, helper processes that die with the
        // test process, the lookaheadctl runner, daemons in sandboxes, the vendored GSM8K problems.
        .target(name: "TestSupport", dependencies: ["LookaheadProtocol"], path: "Tests/TestSupport"),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"]),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["TestSupport", "LookaheadProtocol", "Lookahead", "StepBatcher", "Llama", "lookaheadd"]
        ),
        .testTarget(name: "SystemdSupportTests", dependencies: [
            "SystemdSupport", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
        // Scripted models that check KV bookkeeping cell by cell: the algorithm's and the batcher's unit tests.
        .target(name: "ScriptedEngines", dependencies: ["Lookahead", "Llama"], path: "Tests/ScriptedEngines"),
        .testTarget(name: "LookaheadTests", dependencies: ["Lookahead", "StepBatcher", "Llama", "ScriptedEngines", "TestSupport"]),
        .testTarget(name: "StepBatcherTests", dependencies: ["StepBatcher", "Lookahead", "Llama", "ScriptedEngines"]),
        .testTarget(
            name: "LookaheadDaemonTests",
            dependencies: [
                "LookaheadDaemon", "LookaheadProtocol", "StepBatcher", "Lookahead", "Llama", "ScriptedEngines", "DaemonConfig", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "LookaheadBenchTests", dependencies: ["LookaheadBench", "Lookahead", "LookaheadProtocol", "StepBatcher", "Llama", "ScriptedEngines", "TestSupport"]),
        .testTarget(name: "JobStoreTests", dependencies: ["JobStore", "LookaheadProtocol", "OpenAIProtocol", "TestSupport"]),
        // Batch jobs end to end: the built lookaheadd and lookaheadctl, on real models.
        .testTarget(name: "DaemonJobsTests", dependencies: ["TestSupport", "LookaheadProtocol", "LookaheadDaemon", "lookaheadd", "lookaheadctl"]),
        .testTarget(name: "DaemonConfigTests", dependencies: ["DaemonConfig"]),
        // lookaheadctl: its tests run the built binary against a fake daemon.
        .testTarget(name: "LookaheadClientTests", dependencies: ["LookaheadProtocol", "Lookahead", "lookaheadctl", "TestSupport"]),
        .testTarget(name: "LookaheadProtocolTests", dependencies: ["LookaheadProtocol"]),
        .testTarget(name: "OpenAIProtocolTests", dependencies: ["OpenAIProtocol", "LookaheadProtocol"]),
    ],
    swiftLanguageModes: [.v6]
)
