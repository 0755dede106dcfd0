#!/usr/bin/env python3
"""The target split over rpc-servers, measured through a running daemon (the product path).

Starts --servers ggml-rpc-server processes on 127.0.0.1 (each with --server-threads threads), then
a daemon with its target all local and one with --gpu-layers of the target's layers on the servers
(split evenly), and asks each the same GSM8K questions in each mode. Reports tokens/s per mode and
the bytes sent to the servers and back per generated token (the kernel's counters of their TCP
connections, `ss -ti`, counted from when the daemon is ready, so the weights' upload is left out).
Usage: rpc-bench.py --daemon .build/release/lookaheadd [--servers 2] [--gpu-layers 16] [--asks 3]
         [--max-tokens 64] [--modes ar,lookahead+sd] [--json out.json]"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

from daemonlib import call, problems, start


def server_binary():
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        path = os.path.normpath(os.path.join(d, "..", "bin", "ggml-rpc-server"))
        if d and os.access(path, os.X_OK):
            return path
    sys.exit("ggml-rpc-server not found beside the llama.cpp libraries (LD_LIBRARY_PATH): run `make deps`")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(binary, threads, workdir):
    port = free_port()
    log = open(os.path.join(workdir, "rpc-%d.log" % port), "w")
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port), "-t", str(threads)],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, "127.0.0.1:%d" % port
        except OSError:
            time.sleep(0.1)
    sys.exit("ggml-rpc-server did not listen on port %d" % port)


def traffic(endpoints):
    """Bytes the servers' established connections received and sent so far (iproute2's ss)."""
    received = sent = 0
    for endpoint in endpoints:
        port = endpoint.rsplit(":", 1)[1]
        out = subprocess.run(["ss", "-tinH", "state", "established", "( sport = :%s )" % port],
                             capture_output=True, text=True, check=True).stdout
        received += sum(int(n) for n in re.findall(r"bytes_received:(\d+)", out))
        sent += sum(int(n) for n in re.findall(r"bytes_sent:(\d+)", out))
    return received, sent


def run(sock, args, items, endpoints):
    out = {}
    for mode in args.modes.split(","):
        before, t, tokens = traffic(endpoints), time.perf_counter(), 0
        for item in items[:args.asks]:
            r = call(sock, "ask", {"prompt": item["question"], "mode": mode, "max_tokens": args.max_tokens,
                                   "adaptive": False, "verifier": "exact"})
            tokens += r["tokens"]
        wall = time.perf_counter() - t
        after = traffic(endpoints)
        out[mode] = {"tokens": tokens, "seconds": wall, "tokens_per_second": tokens / wall,
                     "sent_bytes_per_token": (after[0] - before[0]) / tokens,
                     "received_bytes_per_token": (after[1] - before[1]) / tokens}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--daemon", required=True)
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--server-threads", type=int, default=1)
    p.add_argument("--gpu-layers", type=int, default=16)
    p.add_argument("--asks", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--modes", default="ar,lookahead+sd")
    p.add_argument("--json")
    args = p.parse_args()
    items = problems()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("rpc-bench: terminated"))
    workdir = tempfile.mkdtemp(prefix="rpc-bench-")
    servers, report = [], {"servers": args.servers, "server_threads": args.server_threads, "gpu_layers": args.gpu_layers}
    try:
        proc, sock = start(args.daemon, os.path.join(workdir, "local"))
        try:
            report["local"] = run(sock, args, items, [])
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        binary = server_binary()
        servers = [start_server(binary, args.server_threads, workdir) for _ in range(args.servers)]
        endpoints = [e for _, e in servers]
        config = "rpc_servers = %s\ngpu_layers = %d\ntensor_split = %s\n" % (
            ", ".join(endpoints), args.gpu_layers, ",".join("1" for _ in endpoints))
        proc, sock = start(args.daemon, os.path.join(workdir, "split"), config)
        try:
            report["models"] = call(sock, "models")["models"][0]
            report["split"] = run(sock, args, items, endpoints)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        for mode in report["local"]:
            l, s = report["local"][mode], report["split"][mode]
            print("%-13s local %5.2f tok/s, split %5.2f tok/s (%.2fx); per token %7.0f bytes to the servers, %7.0f back"
                  % (mode, l["tokens_per_second"], s["tokens_per_second"], s["tokens_per_second"] / l["tokens_per_second"],
                     s["sent_bytes_per_token"], s["received_bytes_per_token"]), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
    finally:
        for s, _ in servers:
            s.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
