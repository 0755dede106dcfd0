#!/usr/bin/env python3
"""Measures a running lookaheadd: `status` round trips under N concurrent clients (p50/p99) and the
aggregate tokens/s of 1, 2, 4 concurrent `ask`s per mode. Usage: measure-daemon.py SOCKET [GSM8K.jsonl] [--quick] (default: the vendored Tests/Data/gsm8k/test.jsonl)"""
import json, os, socket, struct, sys, threading, time

def call(path, method, params=None, sock=None):
    s = sock or socket.socket(socket.AF_UNIX)
    if sock is None: s.connect(path)
    body = json.dumps({"id": 1, "method": method, "params": params or {}}).encode()
    s.sendall(struct.pack(">I", len(body)) + body)
    buf = b""
    while True:
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            m = json.loads(buf[4:4 + n]); buf = buf[4 + n:]
            if "result" in m or "error" in m:
                if sock is None: s.close()
                return m
        d = s.recv(65536)
        if not d: raise RuntimeError("connection closed")
        buf += d

def status_latency(path, clients=32, per_client=50):
    lat, lock = [], threading.Lock()
    def worker():
        s = socket.socket(socket.AF_UNIX); s.connect(path)
        for _ in range(per_client):
            t = time.perf_counter(); call(path, "status", sock=s); dt = time.perf_counter() - t
            with lock: lat.append(dt)
        s.close()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    [t.start() for t in ts]; [t.join() for t in ts]
    lat.sort()
    return lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, len(lat)

def throughput(path, prompts, mode, n, max_tokens):
    out = [None] * n
    def worker(i):
        out[i] = call(path, "ask", {"prompt": prompts[i], "mode": mode, "max_tokens": max_tokens, "verifier": "exact"})
    t = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    [x.start() for x in ts]; [x.join() for x in ts]
    wall = time.perf_counter() - t
    tokens = sum(o["result"]["tokens"] for o in out)
    return tokens / wall, wall, tokens

# The GSM8K test split vendored in the checkout (MIT; licence beside it).
VENDORED_GSM8K = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Data", "gsm8k", "test.jsonl")

if __name__ == "__main__":
    path = sys.argv[1]
    quick = "--quick" in sys.argv
    p50, p99, n = status_latency(path)
    print(f"status round trip, 32 concurrent clients, {n} calls: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    qs = [json.loads(l)["question"] + "\nPlease reason step by step, and put your final answer within \\boxed{}."
          for l in open(sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else VENDORED_GSM8K)][:4]
    for mode in ["ar", "lookahead", "lookahead+sd"]:
        for n in [1, 2, 4]:
            tps, wall, tokens = throughput(path, qs, mode, n, 48 if quick else 128)
            print(f"{mode:13s} {n} concurrent: {tokens} tokens in {wall:.1f} s = {tps:.1f} tok/s aggregate")
