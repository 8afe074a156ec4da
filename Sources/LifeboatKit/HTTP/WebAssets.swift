import Foundation

/// The live web view: one HTML shell, a stylesheet and a script, served by the daemon (no build
/// step, no external assets). The script renders from `/api/v1/` and puts every text from data
/// into the page with `textContent`, never as markup; the only markup it inserts is the timeline
/// SVG, which the server renders with the report's escaping.
enum WebAssets {
    /// Scripts and styles only from the daemon itself; no framing, no forms, no outside requests.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let page = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="generator" content="Lifeboat \(LifeboatVersion.string)">
        <title>Lifeboat</title>
        <link rel="stylesheet" href="/static/app.css">
        <link rel="icon" href="data:,">
        </head>
        <body>
        <header><a class="brand" href="/">Lifeboat</a><span id="conn" class="conn"></span></header>
        <main id="app"><p class="muted">Loading…</p>
        <noscript><p>This page needs JavaScript. The same data: <a href="/api/v1/">/api/v1/</a>, or <code>lifeboat watch RUN</code>.</p></noscript>
        </main>
        <script src="/static/app.js"></script>
        </body>
        </html>

        """

    /// The page's own rules, then the report's timeline rules (the same SVG, styled the same).
    static let css: String = pageCSS + HTMLReportStyle.css.split(separator: "\n")
        .filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("svg") }.joined(separator: "\n") + "\n"

    static let pageCSS = """
        :root { --ok:#2e7d32; --bad:#c62828; --warn:#b26a00; --muted:#5f6368; --line:#dadce0; --info:#1565c0; --bg:#f6f7f9; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #202124; background: var(--bg); }
        header { display: flex; align-items: center; gap: 12px; padding: 10px 16px; background: #202124; color: #fff; }
        header a.brand { color: #fff; font-weight: 700; text-decoration: none; font-size: 17px; }
        .conn { font-size: 12px; color: #bdc1c6; margin-left: auto; }
        .conn.bad { color: #ffab91; font-weight: 700; }
        main { max-width: 1240px; margin: 0 auto; padding: 12px 16px 40px; }
        h1 { font-size: 20px; margin: 8px 0 4px; word-break: break-all; }
        h2 { font-size: 16px; margin: 0 0 8px; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin-top: 12px; }
        a { color: var(--info); }
        .muted { color: var(--muted); }
        .verdict { border-radius: 10px; padding: 14px 18px; color: #fff; margin-top: 10px; background: var(--info); }
        .verdict.ok { background: var(--ok); } .verdict.attention { background: var(--bad); }
        .verdict .title { font-size: 20px; font-weight: 800; letter-spacing: .02em; }
        .figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-top: 12px; }
        .figure { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
        .figure .label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
        .figure .value { font-size: 22px; font-weight: 700; }
        .figure .sub { font-size: 12px; color: var(--muted); }
        .bar { position: relative; height: 14px; background: #e8eaed; border-radius: 7px; overflow: hidden; display: flex; }
        .bar span { display: block; height: 100%; }
        .bar .s-ok { background: var(--ok); } .bar .s-bad { background: repeating-linear-gradient(45deg, var(--bad) 0 4px, #8e0000 4px 8px); }
        .bar .s-run { background: var(--info); } .bar .s-skip { background: #f2a900; }
        .rto-bar .mark { position: absolute; top: 0; bottom: 0; width: 2px; background: var(--bad); }
        .rows { display: grid; grid-template-columns: minmax(90px, 160px) 1fr minmax(110px, auto); gap: 6px 10px; align-items: center; }
        .rows .name { font-weight: 600; word-break: break-all; }
        .rows .count { font-size: 13px; color: var(--muted); text-align: right; white-space: nowrap; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
        th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eceef1; vertical-align: top; }
        th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; white-space: nowrap; }
        td.err { color: var(--bad); max-width: 46ch; word-break: break-word; }
        .state { font-weight: 600; white-space: nowrap; }
        .state.succeeded, .state.restored, .state.deleted, .state.passed { color: var(--ok); }
        .state.failed, .state.halted, .state.cancelled { color: var(--bad); }
        .state.skipped { color: var(--warn); }
        .state.alive { color: var(--ok); } .state.lost { color: var(--bad); } .state.stopped { color: var(--muted); }
        .daemon { padding: 8px 14px; }
        ul.alerts { list-style: none; padding: 0; margin: 0; }
        ul.alerts li { border-left: 4px solid var(--warn); background: #fff6e5; padding: 6px 10px; margin: 4px 0 8px; font-weight: 600; word-break: break-word; }
        ul.alerts li.bad { border-left-color: var(--bad); background: #fdf3f2; }
        ul.alerts li .why { display: block; font-weight: 400; font-size: 13px; color: var(--muted); white-space: pre-wrap; }
        .state.restoring, .state.deleting, .state.verifying, .state.committing, .state.running { color: var(--info); }
        ul.failures { list-style: none; padding: 0; margin: 0; }
        ul.failures li { border-left: 4px solid var(--bad); padding: 6px 10px; margin: 6px 0; background: #fdf3f2; }
        ul.failures .reason { color: #5f1010; word-break: break-word; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12.5px; }
        ul.failures .action { font-size: 13px; color: var(--muted); }
        .pager { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 8px 0; font-size: 13px; }
        .pager button, .pager select { font: inherit; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
        .pager button:disabled { opacity: .4; }
        ol.events { margin: 0; padding-left: 0; list-style: none; font-size: 13px; max-height: 16em; overflow-y: auto; }
        ol.events li { padding: 2px 0; border-bottom: 1px dotted #eceef1; word-break: break-word; }
        .chart { overflow-x: auto; }
        @media (max-width: 640px) {
          main { padding: 8px 8px 32px; }
          .rows { grid-template-columns: 1fr; gap: 2px; }
          .rows .count { text-align: left; margin-bottom: 6px; }
          .figure .value { font-size: 19px; }
          th.wide, td.wide { display: none; }
          .chart svg.timeline { min-width: 760px; }
        }

        """

    static let script = #"""
        "use strict";
        // Lifeboat live view: renders from /api/v1/ by short polling. Every text from data goes
        // in with textContent; only the server-rendered timeline SVG is inserted as markup.
        (function () {
          const app = document.getElementById("app");
          const conn = document.getElementById("conn");
          const PAGE = 50;

          function el(tag, attrs, ...kids) {
            const e = document.createElement(tag);
            for (const [k, v] of Object.entries(attrs || {})) {
              if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
            }
            for (const k of kids) e.append(k);
            return e;
          }
          function setText(e, t) { t = String(t); if (e.textContent !== t) e.textContent = t; }
          async function get(path) {
            const r = await fetch(path, { cache: "no-store" });
            if (!r.ok) {
              let message = "HTTP " + r.status;
              try { message = (await r.json()).error.message; } catch (e) { /* not JSON */ }
              throw new Error(message);
            }
            return r.json();
          }
          function online(ok, why) {
            conn.className = ok ? "conn" : "conn bad";
            setText(conn, ok ? "live · updated " + new Date().toLocaleTimeString() : "cannot reach lifeboatd: " + why);
          }
          function bytes(n) {
            const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; n = Number(n || 0);
            while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
            return (i ? n.toFixed(1) : n.toFixed(0)) + " " + units[i];
          }
          // As the CLI's: two units at most, what they leave out rounded up into the last, so a
          // value over an objective never reads as the objective.
          function duration(s) {
            if (s == null) return "-";
            s = Math.max(0, Math.ceil(s));
            if (Math.floor(s / 86400) && Math.floor(s % 86400 / 3600)) { if (s % 3600) s += 3600 - s % 3600; }
            else if (s >= 3600 && s % 60) { s += 60 - s % 60; }
            const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
            if (d) return d + "d" + (h ? h + "h" : m ? m + "m" : "");
            if (h) return h + "h" + String(m).padStart(2, "0") + "m";
            if (m) return m + "m" + String(sec).padStart(2, "0") + "s";
            return sec + "s";
          }
          function time(iso) {
            if (!iso) return "-";
            const d = new Date(iso);
            return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
          }
          function count(states, ...names) { return names.reduce((a, n) => a + (states[n] || 0), 0); }
          function stateCell(state) { return el("td", {}, el("span", { class: "state " + state, text: state })); }
          function bar(total, states) {
            const b = el("div", { class: "bar", role: "img" });
            const parts = [["s-ok", count(states, "succeeded")], ["s-bad", count(states, "failed", "cancelled")],
                           ["s-skip", count(states, "skipped")], ["s-run", count(states, "restoring", "verifying", "committing")]];
            for (const [cls, n] of parts) {
              const s = el("span", { class: cls });
              s.style.width = (total ? 100 * n / total : 0) + "%";
              b.append(s);
            }
            b.setAttribute("aria-label", count(states, "succeeded") + " of " + total + " restored");
            return b;
          }
          function updateBar(b, total, states) {
            const ns = [count(states, "succeeded"), count(states, "failed", "cancelled"), count(states, "skipped"),
                        count(states, "restoring", "verifying", "committing")];
            [...b.children].forEach((s, i) => { const w = (total ? 100 * ns[i] / total : 0) + "%"; if (s.style.width !== w) s.style.width = w; });
            b.setAttribute("aria-label", ns[0] + " of " + total + " restored");
          }
          function pager(onChange, filterStates) {
            const box = el("div", { class: "pager" });
            const prev = el("button", { type: "button", text: "← previous" });
            const next = el("button", { type: "button", text: "next →" });
            const info = el("span", { class: "muted" });
            const filter = el("select", { "aria-label": "state" });
            filter.append(el("option", { value: "", text: "all states" }));
            for (const s of filterStates) filter.append(el("option", { value: s, text: s }));
            const p = { offset: 0, state: "", box, info };
            prev.onclick = () => { p.offset = Math.max(0, p.offset - PAGE); onChange(); };
            next.onclick = () => { p.offset += PAGE; onChange(); };
            filter.onchange = () => { p.state = filter.value; p.offset = 0; onChange(); };
            p.show = (total) => {
              if (p.offset >= total && total > 0) { p.offset = Math.floor((total - 1) / PAGE) * PAGE; }
              prev.disabled = p.offset === 0; next.disabled = p.offset + PAGE >= total;
              setText(info, total ? (p.offset + 1) + "–" + Math.min(total, p.offset + PAGE) + " of " + total : "none");
            };
            box.append(filter, prev, next, info);
            return p;
          }

          // MARK: the daemon: whether it is stopping, whether its ledger answers, its hosts
          function age(seconds) { return duration(seconds) + (seconds < 1 ? "" : " ago"); }
          function alert(cls, title, why) {
            return el("li", { class: cls }, title, el("span", { class: "why", text: why }));
          }
          function drawDaemon(box, s) {
            const alerts = [];
            if (s.stopping_since) {
              alerts.push(alert("", "lifeboatd is STOPPING since " + time(s.stopping_since),
                "It drains its runs and changes nothing more; " + (s.host ? "its runs and jobs go back to the ledger, for another host to take over or this one at its next start."
                  : "its runs are recorded interrupted and resume at its next start.")));
            }
            const p = s.ledger_problem;
            if (p) {
              const since = age((Date.now() - Date.parse(p.since)) / 1000).replace(/ ago$/, "");
              alerts.push(s.host == null
                ? alert("bad", "LEDGER WRITES WAITING for " + since + ": " + p.reason, "Every job waits for its next record; nothing is given up, and they go on once the ledger takes writes.")
                : alert("bad", "LEDGER NOT ANSWERING " + s.host + " for " + since + ": " + p.reason,
                        "This host claims nothing and commits nothing it cannot record until it answers; shown: this host's runs and throughput only."));
            }
            for (const h of s.hosts || []) {
              if (h.state !== "lost") continue;
              alerts.push(alert("bad", "HOST " + h.name + " LOST: no heartbeat for " + age(h.heartbeat_age_seconds).replace(/ ago$/, ""),
                "Its runs and jobs are taken over by the hosts alive once its leases run out; restarted, it joins again."));
            }
            for (const x of s.plan_problems || []) {
              alerts.push(alert("", "plan problem in " + x.file + (x.kept_previous ? " (serving the previous version of " + x.kept_previous + ")" : ""),
                x.errors.join("\n")));
            }
            const list = box.querySelector("#daemon-alerts");
            const key = JSON.stringify(alerts.map(a => a.textContent));
            if (list.dataset.key !== key) { list.dataset.key = key; list.replaceChildren(...alerts); }
            const hosts = s.hosts || null;
            setText(box.querySelector("#daemon-line"), "lifeboatd " + s.version + (s.host ? " on " + s.host : "") + " · up " + duration(s.uptime_seconds) +
              " · ledger " + s.ledger + " · " + s.plans + " plan" + (s.plans === 1 ? "" : "s") + " · " + bytes(s.bytes_per_second) + "/s restored" + (hosts ? " by the fleet" : "") + " over the last minute" +
              (hosts ? " · " + hosts.filter(h => h.state === "alive").length + " of " + hosts.length + " hosts alive" : ""));
            const table = box.querySelector("#hosts-box");
            table.hidden = !hosts;
            if (hosts) {
              box.querySelector("#hosts").replaceChildren(...hosts.map(h => el("tr", { "data-host": h.name },
                el("td", { text: h.name + (h.name === s.host ? " (this)" : "") }), stateCell(h.state), el("td", { text: age(h.heartbeat_age_seconds) }),
                el("td", { text: String(h.claimed_jobs) }), el("td", { text: bytes(h.bytes_per_second) + "/s" }),
                el("td", { class: "wide", text: h.version }), el("td", { class: "wide", text: time(h.started_at) }))));
            }
          }
          function daemonPanel() {
            const box = el("section", { class: "daemon", id: "daemon" }, el("ul", { class: "alerts", id: "daemon-alerts" }),
              el("div", { class: "muted", id: "daemon-line" }),
              el("div", { class: "scroll", id: "hosts-box", hidden: "" }, el("table", {},
                el("thead", {}, el("tr", {}, ...["Host", "State", "Heartbeat", "Jobs", "Throughput", "Version", "Started"]
                  .map((h, i) => el("th", { text: h, class: i > 4 ? "wide" : "" })))), el("tbody", { id: "hosts" }))));
            async function refresh() {
              // When the daemon does not answer, the page's own line says so.
              try { drawDaemon(box, await get("/api/v1/status")); } catch (e) { /* said by the page's refresh */ }
              setTimeout(refresh, 3000);
            }
            refresh();
            return box;
          }

          // MARK: runs list
          async function runsPage() {
            document.title = "Runs · Lifeboat";
            app.replaceChildren(el("h1", { text: "Runs" }), daemonPanel());
            const section = el("section", {});
            const body = el("tbody", { id: "runs" });
            const table = el("table", {}, el("thead", {}, el("tr", {}, ...["Run", "Plan", "Mode", "State", "Created", "By", "Note"]
              .map((h, i) => el("th", { text: h, class: i > 4 ? "wide" : "" })))), body);
            section.append(el("div", { class: "scroll" }, table));
            app.append(section);
            async function refresh() {
              try {
                const runs = await get("/api/v1/runs?limit=100");
                body.replaceChildren(...runs.map(r => el("tr", {},
                  el("td", {}, el("a", { href: "/runs/" + encodeURIComponent(r.id), text: r.id })),
                  el("td", { text: r.plan }), el("td", { text: r.mode }), stateCell(r.state),
                  el("td", { text: time(r.created_at) }), el("td", { class: "wide", text: r.started_by }),
                  el("td", { class: "wide", text: r.note || "" }))));
                if (!runs.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "no runs yet" })));
                online(true);
              } catch (e) { online(false, e.message); }
              setTimeout(refresh, 3000);
            }
            refresh();
          }

          // MARK: one run
          async function runPage(id) {
            const base = "/api/v1/runs/" + encodeURIComponent(id);
            const q = (s) => app.querySelector(s);
            app.replaceChildren(
              el("h1", {}, el("span", { id: "title", text: "run " + id })),
              el("div", { class: "muted", id: "subtitle" }),
              daemonPanel(),
              el("div", { class: "verdict", id: "verdict" }, el("div", { class: "title", id: "verdict-title" }), el("div", { id: "verdict-headline" })),
              el("div", { class: "figures" },
                el("div", { class: "figure" }, el("div", { class: "label", text: "Jobs done" }),
                  el("div", { class: "value" }, el("span", { id: "done" }), " / ", el("span", { id: "total" })), el("div", { class: "sub", id: "done-sub" })),
                el("div", { class: "figure" }, el("div", { class: "label", text: "Failed" }), el("div", { class: "value", id: "failed" }), el("div", { class: "sub", id: "failed-sub" })),
                el("div", { class: "figure" }, el("div", { class: "label", id: "sites-label", text: "Sites restored" }), el("div", { class: "value", id: "sites-restored" }), el("div", { class: "sub", id: "sites-sub" })),
                el("div", { class: "figure" }, el("div", { class: "label", text: "Throughput" }), el("div", { class: "value", id: "throughput" }), el("div", { class: "sub", id: "bytes" })),
                el("div", { class: "figure" }, el("div", { class: "label", id: "rto-label", text: "RTO forecast" }), el("div", { class: "value", id: "forecast" }), el("div", { class: "sub", id: "objective" }),
                  el("div", { class: "bar rto-bar", id: "rto-bar" }, el("span", { class: "s-run" }), el("i", { class: "mark" })))),
              el("section", {}, el("h2", { text: "Progress per product" }), el("div", { class: "rows", id: "products" })),
              el("section", {}, el("h2", { text: "Waves and gates" }), el("div", { class: "scroll" }, el("table", {},
                el("thead", {}, el("tr", {}, ...["Wave", "Done", "Failed", "Gate", "Rule"].map(h => el("th", { text: h })))), el("tbody", { id: "waves" })))),
              el("section", { id: "failures-section" }, el("h2", {}, "Failures ", el("span", { class: "muted", id: "failures-count" })),
                el("ul", { class: "failures", id: "failures" })),
              el("section", {}, el("h2", { text: "Timeline" }), el("div", { class: "chart", id: "timeline" }, el("p", { class: "muted", text: "drawn once jobs start" }))),
              el("section", {}, el("h2", { text: "Sites" }), el("div", { id: "sites-pager" }), el("div", { class: "scroll" }, el("table", {},
                el("thead", {}, el("tr", {}, ...["Site", "State", "Products", "Restored / ETA", "Why not"].map(h => el("th", { text: h })))), el("tbody", { id: "sites" })))),
              el("section", {}, el("h2", { text: "Jobs" }), el("div", { id: "jobs-pager" }), el("div", { class: "scroll" }, el("table", {},
                el("thead", {}, el("tr", {}, ...["Job", "Site", "Product", "Wave", "State", "Size", "RTO", "Error"].map((h, i) => el("th", { text: h, class: i === 3 || i === 5 ? "wide" : "" })))),
                el("tbody", { id: "jobs" })))),
              el("section", {}, el("h2", { text: "Events" }), el("ol", { class: "events", id: "events" })));

            let last = null, sites = [], failureKey = "", timelineAt = 0, eventsAfter = 0, finished = false;
            const jobsPager = pager(() => refreshJobs(), ["pending", "waiting", "restoring", "verifying", "committing", "succeeded", "failed", "cancelled", "skipped"]);
            q("#jobs-pager").append(jobsPager.box);
            const sitesPager = pager(() => drawSites(), ["waiting", "restoring", "restored", "deleting", "deleted", "failed"]);
            q("#sites-pager").append(sitesPager.box);

            function drawOverview(o) {
              const r = o.run;
              document.title = o.verdict_title + " · " + r.plan + " · Lifeboat";
              setText(q("#title"), r.mode + " " + r.plan + " · run " + r.id);
              setText(q("#subtitle"), "state " + r.state + (r.note ? " (" + r.note + ")" : "") + " · declared " + time(r.declared_at) +
                " · started by " + r.started_by + " · wave " + Math.min(r.current_wave + 1, r.total_waves) + " of " + r.total_waves);
              const v = q("#verdict");
              v.className = "verdict " + o.verdict.status;
              setText(q("#verdict-title"), o.verdict_title);
              setText(q("#verdict-headline"), o.verdict.headline);
              const done = count(o.states, "succeeded", "failed", "cancelled", "skipped");
              setText(q("#done"), done); setText(q("#total"), o.jobs);
              setText(q("#done-sub"), count(o.states, "succeeded") + " restored, " + count(o.states, "restoring", "verifying", "committing") + " at work");
              setText(q("#failed"), o.failures_total);
              setText(q("#failed-sub"), count(o.states, "skipped") + " skipped, " + count(o.states, "cancelled") + " cancelled");
              const siteTotal = Object.values(o.sites).reduce((a, b) => a + b, 0);
              // A delete's sites are soft-deleted, never restored.
              const del = r.mode === "delete";
              setText(q("#sites-label"), del ? "Sites soft-deleted" : "Sites restored");
              setText(q("#sites-restored"), (o.sites[del ? "deleted" : "restored"] || 0) + " / " + siteTotal);
              setText(q("#sites-sub"), (o.sites.failed || 0) + " failed, " + (o.sites[del ? "deleting" : "restoring"] || 0) + (del ? " deleting" : " restoring"));
              setText(q("#throughput"), o.bytes_per_second == null ? "-" : bytes(o.bytes_per_second) + "/s");
              setText(q("#bytes"), bytes(o.bytes) + " restored");
              const f = o.forecast;
              // Going: the forecast from the measured pace. Ended: the RTO the run reached.
              const ended = !o.active;
              const rto = ended ? o.rto_reached_seconds : f.rto_seconds;
              setText(q("#rto-label"), ended ? "RTO reached" : "RTO forecast");
              setText(q("#forecast"), rto == null ? (ended ? "-" : "no forecast yet") : duration(rto));
              // Ended, the verdict decides (a site not restored missed the objective too).
              const miss = ended ? o.verdict.rto === "missed" : f.objective_seconds != null && rto != null && rto > f.objective_seconds;
              setText(q("#objective"), f.objective_seconds == null ? "no RTO objective" :
                "objective " + duration(f.objective_seconds) + (miss ? (ended ? " · MISSED" : " · FORECAST MISS") : rto == null ? "" : ended ? " · met" : " · on track") +
                (!ended && f.finish_at ? " · finish " + time(f.finish_at) : ""));
              q("#forecast").style.color = miss ? "var(--bad)" : "";
              const rb = q("#rto-bar");
              const scale = Math.max(f.objective_seconds || 0, rto || 0) * 1.05 || 1;
              rb.children[0].style.width = (100 * (rto || 0) / scale) + "%";
              rb.children[0].className = miss ? "s-bad" : "s-run";
              rb.children[1].style.left = (100 * (f.objective_seconds || 0) / scale) + "%";
              rb.children[1].style.display = f.objective_seconds == null ? "none" : "";

              const products = q("#products");
              for (const p of o.products) {
                let row = products.querySelector('[data-product="' + CSS.escape(p.name) + '"]');
                if (!row) {
                  row = el("div", { class: "name", "data-product": p.name, text: p.name });
                  products.append(row, bar(p.total, p.states), el("div", { class: "count" }));
                }
                updateBar(row.nextSibling, p.total, p.states);
                const failed = count(p.states, "failed", "cancelled", "skipped");
                setText(row.nextSibling.nextSibling, count(p.states, "succeeded") + " / " + p.total + (failed ? " · " + failed + " failed" : "") + " · " + bytes(p.bytes));
              }
              q("#waves").replaceChildren(...o.waves.map(w => el("tr", {},
                el("td", { text: String(w.wave) }), el("td", { text: count(w.states, "succeeded", "failed", "cancelled", "skipped") + " / " + w.total }),
                el("td", { text: String(count(w.states, "failed", "cancelled", "skipped")) }), stateCell(w.gate), el("td", { text: w.gate_rule || "-" }))));

              setText(q("#failures-count"), o.failures_total ? "(" + o.failures_total + (o.failures_total > o.failures.length ? ", first " + o.failures.length + " shown; all in Jobs" : "") + ")" : "(none)");
              const key = o.run.state + o.failures.map(x => x.job + x.state + x.attempt).join();
              if (key !== failureKey) {
                failureKey = key;
                q("#failures").replaceChildren(...o.failures.map(x => el("li", { "data-job": String(x.job) },
                  el("div", {}, el("strong", { text: x.site + "/" + x.product }), " ", el("span", { class: "state " + x.state, text: x.state }),
                    el("span", { class: "muted", text: " · job " + x.job + ", attempt " + x.attempt })),
                  el("div", { class: "reason", text: x.error || "(no reason recorded)" }),
                  el("div", { class: "action", text: "What to do: " + x.action }))));
              }
            }

            function drawSites() {
              const rows = sitesPager.state ? sites.filter(s => s.state === sitesPager.state) : sites;
              sitesPager.show(rows.length);
              q("#sites").replaceChildren(...rows.slice(sitesPager.offset, sitesPager.offset + PAGE).map(s => el("tr", { "data-site": s.site },
                el("td", { text: s.site }), stateCell(s.state), el("td", { text: s.products_done + " / " + s.products_total }),
                el("td", { text: s.restored_at ? time(s.restored_at) : s.eta ? "ETA " + time(s.eta) : s.finished_at ? "ended " + time(s.finished_at) : "-" }),
                el("td", { class: "err", text: s.failures.map(x => x.error || x.product + ": " + x.state).join("\n") }))));
            }

            async function refreshJobs() {
              const page = await get(base + "/jobs?offset=" + jobsPager.offset + "&limit=" + PAGE + (jobsPager.state ? "&state=" + jobsPager.state : ""));
              jobsPager.show(page.total);
              q("#jobs").replaceChildren(...page.jobs.map(j => el("tr", { "data-job": String(j.id) },
                el("td", { text: String(j.id) }), el("td", { text: j.site }), el("td", { text: j.product }), el("td", { class: "wide", text: String(j.wave + 1) }),
                stateCell(j.state), el("td", { class: "wide", text: bytes(j.bytes) }), el("td", { text: duration(j.rto_seconds) }),
                el("td", { class: "err", text: j.error || "" }))));
            }

            async function refreshEvents() {
              const page = await get(base + "/events?after=" + eventsAfter + "&limit=200");
              eventsAfter = page.next;
              const list = q("#events");
              for (const e of page.events) list.prepend(el("li", {}, el("span", { class: "muted", text: time(e.at) + " " }), e.message));
              while (list.children.length > 200) list.lastChild.remove();
            }

            async function refreshTimeline() {
              const r = await fetch(base + "/timeline.svg", { cache: "no-store" });
              if (r.ok) q("#timeline").innerHTML = await r.text(); // server-rendered, escaped like the HTML report
            }

            async function tick() {
              try {
                const o = await get(base + "/overview");
                drawOverview(o);
                const changed = !last || JSON.stringify(last.states) !== JSON.stringify(o.states) || last.run.state !== o.run.state;
                if (changed) {
                  sites = (await get(base + "/sites")).sites;
                  drawSites();
                  await refreshJobs();
                }
                await refreshEvents();
                const now = Date.now();
                if ((changed && now - timelineAt > 4000) || (!o.active && !finished)) { timelineAt = now; await refreshTimeline(); }
                last = o;
                online(true);
                if (!o.active) { finished = true; setText(conn, "run ended · final state " + o.run.state); return; }
              } catch (e) { online(false, e.message); }
              setTimeout(tick, 1000);
            }
            tick();
          }

          const m = location.pathname.match(/^\/runs\/([^/]+)\/?$/);
          if (m) runPage(decodeURIComponent(m[1])); else runsPage();
        })();

        """#
}
