// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Lifeboat",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lifeboat", targets: ["lifeboat"]),
        .executable(name: "lifeboatd", targets: ["lifeboatd"]),
        .library(name: "LifeboatKit", targets: ["LifeboatKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // The S3 snapshot store's HTTP client (streaming bodies with back-pressure, TLS, pooling).
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // zlib, linked from the system (zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Linux system calls Swift cannot reach directly (openat2, renameat2, SO_PEERCRED).
        .target(name: "CLinux", path: "Sources/CLinux", linkerSettings: [.linkedLibrary("dl")]),
        // lifeboatd's own start-up, before its first thread (a constructor): it gives up CAP_SYS_NICE.
        .target(name: "CLifeboatd", path: "Sources/CLifeboatd"),
        // ISA-L's gzip inflate, loaded at run time (dlopen) so the package builds and runs without
        // it; no ISA-L header is needed (the ABI is declared in the shim and checked against
        // <isa-l/igzip_lib.h> when that is installed, and the library self-tests at load).
        .target(name: "CIsal", path: "Sources/CIsal", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "LifeboatKit",
            dependencies: [
                "CZlib",
                "CLinux",
                "CIsal",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "lifeboat",
            dependencies: [
                "LifeboatKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "lifeboatd",
            dependencies: [
                "LifeboatKit",
                "CLifeboatd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What both test targets share: a real PostgreSQL server the tests start themselves.
        .target(name: "LifeboatTestSupport", path: "Tests/Support"),
        .testTarget(name: "LifeboatKitTests", dependencies: ["LifeboatKit", "LifeboatTestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["LifeboatKit", "LifeboatTestSupport"]),
    ]
)
