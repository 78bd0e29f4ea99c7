"""bench/stall_matrix_report.py — the host side of bench/stall-matrix: reads the
"STALL-MATRIX-JSON" lines the guests printed (one per kernel) and writes

  stall-matrix.json  one row per (kernel, path, setting): GiB/s (median, min, max, every
                     run), client and server stalls and cause, mitigations, verdict; and per
                     (kernel, path) the fastest stall-free setting and what auto did against
                     it: ratio of medians, mitigations, and a status: "meets goal" (>= 0.9x),
                     "within noise" (below 0.9x but its runs overlap the best's), "below
                     goal" (the runs separate), "stalls"
  stall-matrix.svg   a heat map: a row per kernel x path, a column per setting; red = stalls,
                     grey = not done in the bound, else green (blue: auto that mitigated),
                     darker the closer to the row's best; the ratio written in the cell

and prints the per-row verdicts as a Markdown table.

Usage: stall_matrix_report.py LOG --json FILE --svg FILE [--command "..."]
"""
import argparse
import json
import math
import sys

AUTO_GOAL = 0.9


def setting(c):
    return "%s%s lowat %d" % (c["mode"], ":%d" % c["chunk"] if c["chunk"] else "", c["lowat"])


def short(c):
    return "%s%s, lowat %d" % (c["mode"], " 16K calls" if c["chunk"] == 16384 else
                               (":%d" % c["chunk"] if c["chunk"] else ""), c["lowat"])


def load(log):
    out = []
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("STALL-MATRIX-JSON "):
                out.append(json.loads(line[len("STALL-MATRIX-JSON "):]))
    return out


def build(runs, command):
    cells, rows = [], []
    for k in runs:
        m = k["matrix"]
        for c in m["cells"]:
            cells.append({
                "kernel": k["kernel"], "release": k["release"], "path": c["path"],
                "mode": c["mode"], "chunk": c["chunk"], "mss": c["mss"],
                "snd_mss": c["snd_mss"], "lowat": c["lowat"], "tls_tx": c["tls_tx"],
                "gib_per_s": round(c["mib_per_s_median"] / 1024, 4),
                "gib_per_s_min": round(c["mib_per_s_min"] / 1024, 4),
                "gib_per_s_max": round(c["mib_per_s_max"] / 1024, 4),
                "runs": [dict(r, gib_per_s=round(r["mib_per_s"] / 1024, 4)) for r in c["runs"]],
                "complete": c["complete"], "stall_free": c["stall_free"],
                "client_stalls": c["client_stalls"],
                "server_stalls": c["server_stalls"], "cause": c["cause"],
                "mitigations": c["mitigations"], "verdict": c["verdict"],
            })
        for path in m["paths"]:
            row = [c for c in cells if c["kernel"] == k["kernel"] and c["path"] == path]
            free = [c for c in row if c["stall_free"]]
            best = max(free, key=lambda c: c["gib_per_s"]) if free else None
            autos = []
            for c in row:
                if c["mode"] != "auto":
                    continue
                ratio = c["gib_per_s"] / best["gib_per_s"] if best and best["gib_per_s"] else None
                stalled = c["verdict"] in ("stalls",) or c["verdict"].startswith("not done")
                if stalled:
                    status = "stalls"
                elif ratio is not None and ratio >= AUTO_GOAL:
                    status = "meets goal"
                elif c["verdict"].startswith("slower than best"):
                    status = "below goal"      # the runs separate from the best's
                else:
                    status = "within noise"    # median below 0.9x, runs overlap the best's
                autos.append({"lowat": c["lowat"], "ratio": round(ratio, 3) if ratio else None,
                              "gib_per_s": c["gib_per_s"], "mitigations": c["mitigations"],
                              "runs": len(c["runs"]), "verdict": c["verdict"],
                              "goal_met": status == "meets goal", "status": status})
            rows.append({
                "kernel": k["kernel"], "release": k["release"], "path": path,
                "best": {"setting": setting(best), "gib_per_s": best["gib_per_s"]} if best
                else None,
                "stalls": [setting(c) for c in row if c["verdict"] == "stalls"],
                "auto": autos,
            })
    return {"command": command, "size_bytes": runs[0]["matrix"]["file_bytes"] if runs else 0,
            "runs": runs[0]["matrix"]["runs"] if runs else 0,
            "seconds_bound": runs[0]["matrix"]["seconds_bound"] if runs else 0,
            "kernels": [k["kernel"] for k in runs], "cells": cells, "rows": rows}


def markdown(res):
    # ratios are rounded down: 0.899 shows as 0.89, not as a 0.90 that misses the goal
    out = ["| kernel | path | fastest stall-free (GiB/s) | stalls in | auto lowat 0 | auto lowat 16384 |",
           "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        autos = {a["lowat"]: a for a in r["auto"]}

        def fmt(a):
            if a is None:
                return "-"
            if a["verdict"] == "stalls":
                return "**stalls**"
            if a["ratio"] is None:
                return a["verdict"]
            return "%.2fx (%s), %d mitigation%s in %d runs" % (
                math.floor(a["ratio"] * 100) / 100, a["status"], a["mitigations"],
                "" if a["mitigations"] == 1 else "s", a["runs"])
        out.append("| %s | %s | %s | %s | %s | %s |" % (
            r["kernel"], r["path"],
            "%s (%.3f)" % (r["best"]["setting"], r["best"]["gib_per_s"]) if r["best"] else "none",
            "; ".join(r["stalls"]) or "none",
            fmt(autos.get(0)), fmt(autos.get(16384))))
    return "\n".join(out)


def stall_map(res):
    """Per kernel: a row per path, a column per setting; ratio to the row's best, or the
    stall's cause."""
    out = []
    cols = []
    for c in res["cells"]:
        if (c["mode"], c["chunk"], c["lowat"]) not in cols:
            cols.append((c["mode"], c["chunk"], c["lowat"]))
    best = {(r["kernel"], r["path"]): r["best"]["gib_per_s"] if r["best"] else 0
            for r in res["rows"]}
    for k in res["kernels"]:
        rows = [c for c in res["cells"] if c["kernel"] == k]
        paths = []
        for c in rows:
            if c["path"] not in paths:
                paths.append(c["path"])
        out.append("\n**%s** (%s): x the row's fastest stall-free median; **STALL** (cause); "
                   "mN = auto mitigated N times over its runs\n" % (k, rows[0]["release"]))
        out.append("| path | " + " | ".join(short(dict(mode=m, chunk=ch, lowat=lw))
                                          for m, ch, lw in cols) + " |")
        out.append("|---|" + "---|" * len(cols))
        by = {(c["path"], c["mode"], c["chunk"], c["lowat"]): c for c in rows}
        for path in paths:
            cells = []
            for m, ch, lw in cols:
                c = by.get((path, m, ch, lw))
                if c is None:
                    cells.append("")
                elif c["verdict"] == "stalls":
                    cells.append("**STALL** (%s)" % c["cause"])
                elif not c["stall_free"]:
                    cells.append(c["verdict"])
                else:
                    b = best[(k, path)]
                    cells.append("%.2f%s" % (math.floor(c["gib_per_s"] / b * 100) / 100 if b else 0,
                                             " m%d" % c["mitigations"] if c["mitigations"] else ""))
            out.append("| %s | %s |" % (path, " | ".join(cells)))
    return "\n".join(out)


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(res):
    cols = []
    for c in res["cells"]:
        key = (c["mode"], c["chunk"], c["lowat"])
        if key not in cols:
            cols.append(key)
    rows = []
    for c in res["cells"]:
        key = (c["kernel"], c["path"])
        if key not in rows:
            rows.append(key)
    by = {(c["kernel"], c["path"], c["mode"], c["chunk"], c["lowat"]): c for c in res["cells"]}
    best = {(r["kernel"], r["path"]): r["best"]["gib_per_s"] if r["best"] else 0
            for r in res["rows"]}
    cw, ch, left, top = 78, 26, 330, 120
    w, h = left + cw * len(cols) + 20, top + ch * len(rows) + 90
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (w, h),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="14">bench/stall-matrix: throughput relative to the '
         'row\'s fastest stall-free setting (%d MiB, median of %d, bound %g s per run)</text>'
         % (res["size_bytes"] >> 20, res["runs"], res["seconds_bound"])]
    for j, (mode, chunk, lowat) in enumerate(cols):
        x = left + j * cw + cw / 2
        o.append('<text x="%.0f" y="%d" text-anchor="middle" font-weight="bold">%s</text>' % (
            x, top - 30, esc(mode + (" 16K" if chunk == 16384 else
                                     (":%d" % chunk if chunk else "")))))
        o.append('<text x="%.0f" y="%d" text-anchor="middle">lowat %d</text>' % (
            x, top - 14, lowat))
    for i, (kernel, path) in enumerate(rows):
        y = top + i * ch
        o.append('<text x="10" y="%d" class="row">%s — %s</text>' % (y + 17, esc(kernel),
                                                                     esc(path)))
        for j, (mode, chunk, lowat) in enumerate(cols):
            c = by.get((kernel, path, mode, chunk, lowat))
            x = left + j * cw
            if c is None:
                continue
            b = best[(kernel, path)]
            ratio = c["gib_per_s"] / b if b else 0
            v = c["verdict"]
            if v == "stalls":
                fill, label, fg = "#c62828", c["cause"] if c["cause"] != "-" else "stall", "white"
            elif v.startswith("not done") or v == "ktlsd did not start":
                fill, label, fg = "#9e9e9e", "not done", "black"
            else:
                # lightness: 1.0 -> dark, 0.5 and below -> pale
                t = max(0.0, min(1.0, (ratio - 0.5) / 0.5))
                if v == "rescued by auto":
                    base = (21, 101, 192)
                else:
                    base = (46, 125, 50)
                rgb = tuple(int(255 - (255 - ch_) * (0.25 + 0.75 * t)) for ch_ in base)
                fill = "#%02x%02x%02x" % rgb
                fg = "white" if t > 0.6 else "black"
                label = "%.2f%s" % (ratio, " m%d" % c["mitigations"] if c["mitigations"] else "")
            o.append('<rect class="cell" x="%d" y="%d" width="%d" height="%d" fill="%s" '
                     'stroke="white"><title>%s %s %s: %s, %.3f GiB/s [%.3f..%.3f]</title></rect>'
                     % (x, y, cw, ch, fill, esc(kernel), esc(path), esc(setting(c)), esc(v),
                        c["gib_per_s"], c["gib_per_s_min"], c["gib_per_s_max"]))
            o.append('<text x="%.0f" y="%d" text-anchor="middle" fill="%s">%s</text>' % (
                x + cw / 2, y + 17, fg, esc(label)))
    y = top + len(rows) * ch + 24
    o.append('<text x="10" y="%d">red: stalls (cause from ktlsd\'s detector); grey: not done '
             'in the bound without a stall; green: stall-free, darker = closer to the row\'s '
             'best (1.00); blue: auto that mitigated (mN: N mitigations over the runs)</text>' % y)
    o.append('<text x="10" y="%d">%s</text>' % (y + 18, esc(res.get("command") or "")))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--json", required=True)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--command", default="")
    a = ap.parse_args()
    runs = load(a.log)
    if not runs:
        print("stall-matrix: no results in %s" % a.log, file=sys.stderr)
        sys.exit(1)
    res = build(runs, a.command)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    with open(a.svg, "w") as f:
        f.write(svg(res))
    print(markdown(res))
    print(stall_map(res))


if __name__ == "__main__":
    main()
