// swift-tools-version:5.4
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM renames an executable's entry point to
// <module>_main and aliases main to it, which clashes with libFuzzer providing main.
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
