import Foundation
import LifeboatTestSupport
import Testing

/// Packagers build once and deploy everywhere: the ISA-L shim needs no ISA-L header at build time.
/// Compiled here the way a build machine without libisal-dev compiles it (the header ignored), it
/// must load the host's libisal.so.2, pass its self-test and inflate a real archive to the same
/// bytes as gzip.
@Suite(.ownThread) struct IsalHeaderlessTests {
    static let libisal = ["/usr/lib/x86_64-linux-gnu/libisal.so.2", "/usr/lib/aarch64-linux-gnu/libisal.so.2", "/usr/lib/libisal.so.2"]
        .first { FileManager.default.fileExists(atPath: $0) }
    static var ready: Bool { toolAvailable("/usr/bin/cc") && libisal != nil }
    static let note: Comment = "needs a C compiler (gcc) and libisal2 (apt-get install libisal2)"

    @Test(.enabled(if: ready || ProcessInfo.processInfo.environment["CI"] == "true", note))
    func shimBuiltWithoutTheHeaderUsesTheHostsLibrary() throws {
        #expect(Self.ready, "\(Self.note)")
        let dir = TempDir()
        let driver = dir.write("driver.c", """
            #include <stdio.h>
            #include <stdlib.h>
            #include "cisal.h"
            // gunzip stdin (one or more members) to stdout through the shim.
            int main(void) {
                if (!lifeboat_isal_available()) { fprintf(stderr, "unavailable: %s\\n", lifeboat_isal_unavailable_reason()); return 3; }
                lifeboat_isal *s = lifeboat_isal_new();
                static uint8_t in[1 << 16], out[1 << 16];
                size_t have = 0, start = 0;
                for (;;) {
                    if (start == have) { have = fread(in, 1, sizeof in, stdin); start = 0; if (have == 0) break; }
                    uint32_t used = 0, made = 0; int finished = 0;
                    int rc = lifeboat_isal_inflate(s, in + start, (uint32_t)(have - start), out, sizeof out, &used, &made, &finished);
                    if (rc < 0) { fprintf(stderr, "inflate: %s\\n", lifeboat_isal_describe(rc)); return 1; }
                    fwrite(out, 1, made, stdout);
                    start += used;
                    if (finished) lifeboat_isal_reset(s);
                }
                lifeboat_isal_free(s);
                return 0;
            }
            """)
        let source = Binaries.packageRoot + "/Sources/CIsal"
        let binary = dir.file("driver")
        let build = try run("/usr/bin/cc", ["-O1", "-DLIFEBOAT_IGNORE_ISAL_HEADERS", "-I", source + "/include", driver, source + "/cisal.c",
                                             "-o", binary, "-ldl", "-lpthread"])
        #expect(build.status == 0, "\(build.stderr)")
        // No ISA-L symbol is linked in: it can only have come from dlopen at run time.
        let symbols = try run("/usr/bin/nm", ["-u", binary])
        #expect(!symbols.stdout.contains("isal_inflate"), "\(symbols.stdout)")

        let gen = try run(Binaries.lifeboat, ["fleet", "generate", dir.file("store"), "--sites", "1", "--products", "jira",
                                             "--size", "512KiB", "--now", "2026-11-25T10:00:00Z"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let archive = try newestArchive(dir, "acme", "jira")
        let viaShim = try run("/bin/sh", ["-c", "\(binary) < \(archive) | sha256sum"])
        let viaGzip = try run("/bin/sh", ["-c", "gzip -dc < \(archive) | sha256sum"])
        #expect(viaShim.status == 0 && viaGzip.status == 0, "\(viaShim.stderr)\(viaGzip.stderr)")
        #expect(viaShim.stdout == viaGzip.stdout)
        // A damaged member fails as ISA-L says, not with garbage.
        let damaged = dir.file("damaged.gz")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: archive))
        bytes[bytes.count - 6] ^= 0xFF // inside the CRC-32
        try bytes.write(to: URL(fileURLWithPath: damaged))
        let failed = try run("/bin/sh", ["-c", "\(binary) < \(damaged) > /dev/null"])
        #expect(failed.status == 1 && failed.stderr.contains("incorrect data check"), "\(failed.stderr)")
    }
}
