import Foundation

/// Checks a page with tools outside Swift, so the HTML is judged by real parsers.
enum HTMLCheck {
    static let python = "/usr/bin/python3"
    static let xmllint = "/usr/bin/xmllint"
    static var hasPython: Bool { FileManager.default.isExecutableFile(atPath: python) }
    static var hasXmllint: Bool { FileManager.default.isExecutableFile(atPath: xmllint) }

    /// Python's html.parser with a strict tag stack: every non-void element closed, in order, and
    /// no `<script>`, no external resource. Returns the problems found (empty when well-formed).
    static func problems(inFile path: String) throws -> [String] {
        let script = #"""
        import sys
        from html.parser import HTMLParser
        VOID = {"area","base","br","col","embed","hr","img","input","link","meta","source","track","wbr"}
        class Strict(HTMLParser):
            def __init__(self):
                super().__init__(convert_charrefs=True)
                self.stack, self.problems, self.doctype = [], [], False
            def handle_decl(self, decl):
                self.doctype = self.doctype or decl.lower() == "doctype html"
            def handle_starttag(self, tag, attrs):
                if tag == "script": self.problems.append("script element at %s" % (self.getpos(),))
                for name, value in attrs:
                    if name in ("src", "href") or (value and ("http://" in value or "https://" in value) and name != "xmlns"):
                        self.problems.append("external reference %s=%r at %s" % (name, value, self.getpos()))
                    if name.startswith("on"): self.problems.append("event handler %s at %s" % (name, self.getpos()))
                if tag not in VOID: self.stack.append((tag, self.getpos()))
            def handle_startendtag(self, tag, attrs):
                pass
            def handle_endtag(self, tag):
                if tag in VOID: return
                if not self.stack: self.problems.append("stray </%s> at %s" % (tag, self.getpos())); return
                open_tag, pos = self.stack.pop()
                if open_tag != tag: self.problems.append("</%s> at %s closes <%s> from %s" % (tag, self.getpos(), open_tag, pos))
        p = Strict()
        p.feed(open(sys.argv[1], encoding="utf-8").read())
        p.close()
        if not p.doctype: p.problems.append("no <!DOCTYPE html>")
        for tag, pos in p.stack: p.problems.append("<%s> from %s never closed" % (tag, pos))
        print("\n".join(p.problems))
        """#
        let result = try runProcess(python, ["-c", script, path])
        guard result.status == 0 else { return ["python failed: \(result.output)"] }
        return result.output.split(separator: "\n").map(String.init)
    }

    /// xmllint's XML parser over the inline SVG (SVG is XML: it must be well-formed on its own).
    static func svgProblems(_ html: String, dir: TestDirectory) throws -> String? {
        guard let start = html.range(of: "<svg"), let end = html.range(of: "</svg>", range: start.upperBound..<html.endIndex) else {
            return "no <svg> element"
        }
        let path = dir.write("timeline.svg", String(html[start.lowerBound..<end.upperBound]))
        let result = try runProcess(xmllint, ["--noout", path])
        return result.status == 0 ? nil : result.output
    }
}

extension String {
    /// Non-overlapping occurrences of `needle`.
    func occurrences(of needle: String) -> Int {
        var count = 0
        var range = startIndex..<endIndex
        while let found = self.range(of: needle, range: range) {
            count += 1
            range = found.upperBound..<endIndex
        }
        return count
    }
}
