#!/usr/bin/env python3
"""Gathers what scripts/gpu-run.sh measured into summary.json (beside the reports) and prints the
tables: phase seconds, pass costs, speed-up against α and γ beside the paper's formula, the Swift
side's share of wall time, and the crowd runs. A phase that was skipped or failed shows as missing.

Usage: gpu-summary.py RESULTS_DIR FLAVOUR TARGET_SHAPE DRAFT_SHAPE
"""
import glob
import json
import os
import re
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(value, places, suffix=""):
    return "–" if value is None else ("%." + str(places) + "f%s") % (value, suffix)


def main():
    res, flavour, target, draft = sys.argv[1:5]
    phases = []
    with open(os.path.join(res, "phases.tsv")) as f:
        for line in f:
            name, seconds = line.rstrip("\n").split("\t")
            phases.append({"phase": name, "seconds": int(seconds)})
    print("%s, target %s, draft %s" % (flavour, target, draft))
    print("\nphase seconds")
    for p in phases:
        print("  %-34s %5d" % (p["phase"], p["seconds"]))

    passes = load(os.path.join(res, "passes.json"))
    if passes:
        print("\npass cost T(n)/T(1) (%d tokens of context, median of %d)" % (passes["prefix"], passes["repeats"]))
        rows = passes["target"]["rows"]
        print("  %-8s %-24s %9s  %s" % ("model", "device", "T(1) ms", "  ".join("n=%-4d" % n for n in rows)))
        for role in ("target", "draft"):
            curve = passes.get(role)
            if curve:
                print("  %-8s %-24s %9s  %s" % (role, curve["device"][:24], fmt(curve["seconds"][0] * 1000, 2),
                                          "  ".join("%-6s" % fmt(r, 2) for r in curve["ratio"])))
        print("  c %s, γ* = ⌈1/c⌉ = %s" % (fmt(passes["c"], 3), passes["gamma_star"]))

    sweep = []
    for path in sorted(glob.glob(os.path.join(res, "alpha-*-g*.json"))):
        m = re.search(r"alpha-([0-9.]+)-g(\d+)\.json$", path)
        report = load(path)
        if not (m and report):
            continue
        ar = report["modes"].get("ar", {})
        for mode in ("lookahead", "lookahead+sd"):
            s = report["modes"].get(mode)
            if s:
                sweep.append({"alpha_set": float(m.group(1)), "gamma": int(m.group(2)), "mode": mode,
                              "alpha": s["alpha"], "c": s["c"], "speedup": s["speedup"],
                              "model_speedup": s["model_speedup"], "tokens_per_s": s["tokens_per_s"],
                              "ar_tokens_per_s": ar.get("tokens_per_s"), "swift_share": s["overhead_share"],
                              "ar_swift_share": ar.get("overhead_share")})
    if sweep:
        print("\nspeed-up over ar, speculation always on (model: the paper's async formula at the measured α, c and γ;"
              " swift: wall time outside the passes)")
        print("  %5s %3s  %-13s %6s %6s %9s %8s %7s %9s %9s %7s %7s" % ("α set", "γ", "mode", "α", "c", "speed-up",
              "model", "/model", "tok/s", "ar tok/s", "swift", "ar swift"))
        for r in sweep:
            ratio = r["speedup"] / r["model_speedup"] if r["speedup"] and r["model_speedup"] else None
            print("  %5.2f %3d  %-13s %6s %6s %9s %8s %7s %9s %9s %7s %7s" % (
                r["alpha_set"], r["gamma"], r["mode"], fmt(r["alpha"], 2), fmt(r["c"], 3), fmt(r["speedup"], 2, "×"),
                fmt(r["model_speedup"], 2, "×"), fmt(ratio, 2), fmt(r["tokens_per_s"], 1), fmt(r["ar_tokens_per_s"], 1),
                fmt(r["swift_share"] and r["swift_share"] * 100, 1, "%"),
                fmt(r["ar_swift_share"] and r["ar_swift_share"] * 100, 1, "%")))

    crowds = load(os.path.join(res, "sessions.json"))
    if crowds:
        print("\nsessions at once, packed by the scheduler (adaptive on)")
        print("  %-10s %8s %8s %9s %7s %7s %9s %7s" % ("mode", "sessions", "tok/s", "vs ar", "p50 s", "p95 s", "peak live",
                                                      "swift"))
        for c in crowds["crowds"]:
            ar = next((a for a in crowds["crowds"] if a["mode"] == "ar" and a["sessions"] == c["sessions"]), None)
            ratio = c["tokens_per_s"] / ar["tokens_per_s"] if ar and ar["tokens_per_s"] else None
            print("  %-10s %8d %8s %9s %7s %7s %9d %7s" % (c["mode"], c["sessions"], fmt(c["tokens_per_s"], 1),
                  fmt(ratio, 2, "×"), fmt(c["latency_p50_s"], 2), fmt(c["latency_p95_s"], 2), c["peak_live"],
                  fmt(c["overhead_share"] * 100, 1, "%")))

    skipped = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(res, "*.txt"))
                     if open(p).read(200).startswith(("skipped", "failed")))
    failed = [os.path.basename(p)[:-4] for p in glob.glob(os.path.join(res, "*.txt"))
              if "failed or timed out" in open(p).read()]
    if skipped or failed:
        print("\nnot measured: %s" % ", ".join(sorted(set(skipped + failed))))
    with open(os.path.join(res, "summary.json"), "w") as f:
        json.dump({"flavour": flavour, "target": target, "draft": draft, "phases": phases, "passes": passes,
                   "alpha_sweep": sweep, "sessions": crowds and crowds["crowds"],
                   "not_measured": sorted(set(skipped + failed))}, f, indent=1)


if __name__ == "__main__":
    main()
