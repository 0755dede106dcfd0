#!/usr/bin/env python3
"""The prefix cache, measured through a running daemon's socket (the product path):

1. A conversation whose history is about --history-tokens long (GSM8K questions and their reference
   answers as earlier turns): time to the first token of the next turn with `cache_prompt: false`
   (a cold prefill), then the first turn cold and the next turn warm (its history cached).
2. A batch job of --lines lines sharing a --preamble-tokens preamble (instructions and worked
   examples), each with its own question: submitted with `cache_prompt: false` on every line, then
   as it is; wall time from submission to the last line, and the cached tokens the lines report.

Time to first token is the wall time of an `ask` with max_tokens 1: the prefill and one decode.
Usage: prefix-bench.py --daemon .build/release/lookaheadd [--history-tokens 2000] [--preamble-tokens 1000]
         [--lines 20] [--mode lookahead+sd] [--json out.json] [--quick]
Models: $LOOKAHEAD_MODELS, else ${XDG_CACHE_HOME:-$HOME/.cache}/lookaheadd/models (`make models`)."""
import argparse, json, shutil, signal, sys, tempfile, time

from daemonlib import call, problems, start


def history(target_tokens, items):
    """Earlier turns: question, reference answer, … until about `target_tokens` (GSM8K text runs ≈ 3 bytes a token)."""
    turns, size, i = [{"role": "system", "content": "You are a patient maths tutor."}], 0, 0
    while size < target_tokens * 3:
        q, a = items[i]["question"], items[i]["answer"]
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        size += len(q) + len(a)
        i += 1
    return turns, i


def timed_ask(sock, params):
    t = time.perf_counter()
    r = call(sock, "ask", params)
    return time.perf_counter() - t, r


def conversation(sock, args, items):
    turns, used = history(args.history_tokens, items)
    q1, q2 = items[used]["question"], items[used + 1]["question"]
    knobs = {"mode": args.mode, "max_tokens": 1, "verifier": "exact"}
    turn1 = turns + [{"role": "user", "content": q1}]
    # The next turn, with the first one's answer as the model wrote it.
    t_first, first = timed_ask(sock, dict(knobs, messages=turn1))
    turn2 = turn1 + [{"role": "assistant", "content": first["text"]}, {"role": "user", "content": q2}]
    t_cold, cold = timed_ask(sock, dict(knobs, messages=turn2, cache_prompt=False))
    t_warm, warm = timed_ask(sock, dict(knobs, messages=turn2))
    assert cold["cached_tokens"] == 0 and warm["cached_tokens"] > 0, (cold, warm)
    return {"history_turns": len(turns), "first_turn": {"seconds": t_first, "prompt_tokens": first["prompt_tokens"],
                                                        "cached_tokens": first["cached_tokens"]},
            "next_turn_cold": {"seconds": t_cold, "prompt_tokens": cold["prompt_tokens"], "cached_tokens": 0},
            "next_turn_warm": {"seconds": t_warm, "prompt_tokens": warm["prompt_tokens"],
                               "cached_tokens": warm["cached_tokens"]},
            "speedup": t_cold / t_warm}


def preamble(target_tokens, items):
    text = ("Solve the problem below. Work step by step, one short line per step, and end with the answer "
            "after '####'. Here are worked examples.\n\n")
    i = 0
    while len(text) < target_tokens * 3:
        text += "Problem: %s\nSolution: %s\n\n" % (items[i]["question"], items[i]["answer"])
        i += 1
    return text, i


def batch(sock, args, items, cache):
    text, used = preamble(args.preamble_tokens, items)
    lines = []
    for k in range(args.lines):
        line = {"custom_id": "q%d" % k, "prompt": text + "Problem: " + items[used + k]["question"] + "\nSolution:",
                "mode": args.mode, "max_tokens": args.line_tokens, "verifier": "exact"}
        if not cache:
            line["cache_prompt"] = False
        lines.append(json.dumps(line))
    t = time.perf_counter()
    job = call(sock, "jobs.submit", {"content": "\n".join(lines) + "\n", "now": True})
    while call(sock, "jobs.get", {"id": job["id"]})["state"] not in ("completed", "failed", "cancelled", "expired"):
        time.sleep(0.5)
    wall = time.perf_counter() - t
    results = call(sock, "jobs.results", {"id": job["id"], "limit": 1000})["lines"]
    done = [l["result"] for l in results if l["state"] == "done"]
    assert len(done) == args.lines, results
    return {"seconds": wall, "lines": args.lines, "prompt_tokens": sum(r["prompt_tokens"] for r in done),
            "cached_tokens": sum(r["cached_tokens"] for r in done), "generated_tokens": sum(r["tokens"] for r in done)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--daemon", required=True)
    p.add_argument("--history-tokens", type=int, default=2000)
    p.add_argument("--preamble-tokens", type=int, default=1000)
    p.add_argument("--lines", type=int, default=20)
    p.add_argument("--line-tokens", type=int, default=16)
    p.add_argument("--mode", default="lookahead+sd")
    p.add_argument("--json")
    p.add_argument("--quick", action="store_true", help="300-token history, 200-token preamble, 3 lines")
    args = p.parse_args()
    if args.quick:
        args.history_tokens, args.preamble_tokens, args.lines, args.line_tokens = 300, 200, 3, 4
    items = problems()
    # A kill takes the same way out as the end: the daemon is stopped and its directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("prefix-bench: terminated"))
    workdir = tempfile.mkdtemp(prefix="prefix-bench-")
    proc, sock = start(args.daemon, workdir)
    try:
        report = {"mode": args.mode, "conversation": conversation(sock, args, items)}
        c = report["conversation"]
        print("conversation, %d earlier turns: first turn %.1f s (%d prompt tokens); next turn %d tokens: cold %.1f s, "
              "warm %.1f s with %d cached (%.1fx)" % (
                  c["history_turns"], c["first_turn"]["seconds"], c["first_turn"]["prompt_tokens"],
                  c["next_turn_cold"]["prompt_tokens"], c["next_turn_cold"]["seconds"], c["next_turn_warm"]["seconds"],
                  c["next_turn_warm"]["cached_tokens"], c["speedup"]), flush=True)
        report["batch_off"] = batch(sock, args, items, cache=False)
        report["batch_on"] = batch(sock, args, items, cache=True)
        off, on = report["batch_off"], report["batch_on"]
        report["batch_speedup"] = off["seconds"] / on["seconds"]
        print("batch, %d lines of %d prompt tokens on average: cache off %.1f s, on %.1f s (%d of %d prompt tokens "
              "cached; %.1fx)" % (on["lines"], on["prompt_tokens"] // on["lines"], off["seconds"], on["seconds"],
                                  on["cached_tokens"], on["prompt_tokens"], report["batch_speedup"]), flush=True)
        report["status"] = call(sock, "status")["prefix_cache"]
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
