// swift-tools-version:6.0
// libFuzzer targets over LifeboatKit's public entry points. Built only by scripts/fuzz, with
// `-sanitize=fuzzer -parse-as-library` (libFuzzer provides main), into its own .build.
import PackageDescription

let package = Package(
    name: "LifeboatFuzz",
    dependencies: [.package(name: "Lifeboat", path: "..")],
    targets: [
        .executableTarget(name: "FuzzTarReader", dependencies: [.product(name: "LifeboatKit", package: "Lifeboat")]),
        .executableTarget(name: "FuzzPlanDecoder", dependencies: [.product(name: "LifeboatKit", package: "Lifeboat")]),
    ]
)
