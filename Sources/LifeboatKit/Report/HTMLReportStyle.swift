/// The HTML report's inline stylesheet. Outcome colours always come with a word or a mark
/// (and failures are hatched in the timeline), so nothing depends on telling colours apart.
enum HTMLReportStyle {
    static let css = """
        :root { --ok:#2e7d32; --bad:#c62828; --warn:#b26a00; --muted:#5f6368; --line:#dadce0; --info:#1565c0; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #202124; background: #f6f7f9; }
        main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 40px; }
        h1 { font-size: 20px; margin: 0 0 4px; }
        h2 { font-size: 17px; margin: 28px 0 10px; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 4px 18px 16px; margin-top: 16px; }
        .verdict { border-radius: 10px; padding: 18px 22px; color: #fff; }
        .verdict.ok { background: var(--ok); }
        .verdict.attention { background: var(--bad); }
        .verdict.in-progress { background: var(--info); }
        .verdict .title { font-size: 28px; font-weight: 800; letter-spacing: .02em; }
        .verdict .headline { font-size: 18px; font-weight: 600; margin-top: 2px; }
        .verdict .context { opacity: .92; margin-top: 8px; }
        .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; margin-top: 16px; }
        .card { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--muted); border-radius: 8px; padding: 10px 14px; }
        .card.ok { border-left-color: var(--ok); }
        .card.bad { border-left-color: var(--bad); }
        .card.info { border-left-color: var(--info); }
        .card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
        .card .v { font-size: 22px; font-weight: 700; white-space: nowrap; }
        .card .s { color: var(--muted); font-size: 12.5px; }
        section.failures { border: 2px solid var(--bad); }
        section.failures h2 { color: var(--bad); }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
        td.n, th.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
        td.reason { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-word; }
        td.path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; color: var(--muted); word-break: break-all; }
        tr.bad td { background: #fdecea; }
        tr.late td { background: #fff4e5; }
        td.t { white-space: nowrap; }
        .wide { overflow-x: auto; }
        #jobs td:nth-child(1), #jobs td:nth-child(6), #jobs td:nth-child(7), #jobs td:nth-child(8), #jobs td:nth-child(9) { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
        #jobs td:nth-child(5) { white-space: nowrap; }
        #jobs td:nth-child(5) small { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); white-space: normal; overflow-wrap: anywhere; }
        #jobs td:nth-child(10) { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; overflow-wrap: anywhere; min-width: 18em; }
        .y { color: var(--ok); font-weight: 700; }
        .no { color: var(--bad); font-weight: 700; }
        .state { font-weight: 600; }
        .state.failed, .state.skipped, .state.cancelled { color: var(--bad); }
        .state.succeeded { color: var(--ok); }
        .muted { color: var(--muted); }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 8px 0 0; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; }
        .legend { display: flex; flex-wrap: wrap; gap: 18px; margin: 6px 0 10px; }
        .legend span { display: inline-flex; align-items: center; gap: 6px; }
        .sw { display: inline-block; width: 22px; height: 12px; border-radius: 2px; }
        .sw.ok { background: var(--ok); } .sw.failed { background: repeating-linear-gradient(45deg, var(--bad) 0 4px, #e8a3a3 4px 6px); }
        .sw.late { background: #e08600; } .sw.skipped { background: #f2a900; } .sw.cancelled { background: #9e9e9e; } .sw.open { background: var(--info); }
        .sw.rto { width: 3px; height: 16px; background: var(--bad); }
        .chart { overflow-x: auto; }
        svg.timeline { width: 100%; height: auto; display: block; font-family: system-ui, sans-serif; }
        svg .band { fill: #f8f9fa; } svg .band.alt { fill: #eef1f5; }
        svg .wave { font-size: 13px; font-weight: 700; fill: #202124; }
        svg .wave-sub { font-size: 11px; fill: #5f6368; }
        svg .wave-bad { font-size: 11px; font-weight: 700; fill: #c62828; }
        svg .grid { stroke: #c8ccd2; stroke-width: 1; stroke-dasharray: 2 3; }
        svg .tick { font-size: 11px; fill: #5f6368; text-anchor: middle; }
        svg .axis-title { font-size: 11.5px; fill: #5f6368; text-anchor: middle; }
        svg .job.ok { fill: #2e7d32; } svg .job.failed { fill: url(#hatch); stroke: #8e0000; stroke-width: .6; }
        svg .job.late { fill: #e08600; stroke: #8a4b00; stroke-width: .6; }
        svg .job.skipped { fill: #f2a900; } svg .job.cancelled { fill: #9e9e9e; } svg .job.open { fill: #1565c0; }
        svg .job-label { font-size: 10.5px; fill: #3c4043; } svg .job-label.bad { fill: #c62828; font-weight: 700; }
        svg .job-label.late { fill: #8a4b00; font-weight: 700; }
        svg .rto { stroke: #c62828; stroke-width: 2; stroke-dasharray: 6 4; }
        svg .rto-label { font-size: 12px; font-weight: 700; fill: #c62828; }
        svg .now { stroke: #1565c0; stroke-width: 1.5; }
        svg .now-label { font-size: 11px; fill: #1565c0; }
        footer { color: var(--muted); font-size: 12px; margin-top: 20px; }
        @media print { body { background: #fff; } section { break-inside: avoid; } }
        """
}
