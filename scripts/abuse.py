#!/usr/bin/env python3
"""A bounded load-and-abuse run against a real lookaheadd (issue 14).

Starts the daemon in a temp directory on the tiny model, then for --seconds at once: 64 normal
clients asking short questions, 8 clients that write and never read, 200 connections that stop in
the middle of a frame, 8 idle connections, one flooder (10^5 asks, never reading), one batch job
paged through jobs.results, a status prober, and a probe of the connection limit. It then checks
that the daemon survived within its memory bound and its limits, prints a summary (and one
`ABUSE-SUMMARY {json}` line) and exits 0 only if every check holds (1 otherwise: each failed
check is printed with why, then the daemon's last output lines). About 2.5 minutes in all with
the defaults: the load, then up to DRAIN_SECONDS for the last asks and the job.

Usage: scripts/abuse.py --daemon .build/debug/lookaheadd [--seconds 90] [--rss-margin-mb 300]
                        [--status-p99-ms 2000]
Models: $LOOKAHEAD_MODELS, else ${XDG_CACHE_HOME:-$HOME/.cache}/lookaheadd/models (tiny.gguf).
Python 3 standard library only.
"""
import argparse
import json
import os
import random
import resource
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

NORMAL_CLIENTS = 64
# On 2 shared cores the debug daemon answers 2-4 eight-token asks a second with the tiny model.
# One ask at a time per client and a long pause between keeps the engine busy (a few asks per
# client in 90 s) while leaving few asks open when the load ends: they, and then the batch job
# (which runs only when no ask waits), must finish within DRAIN_SECONDS. The pause stays under
# idle_timeout_seconds, so the daemon has no reason to close a normal client.
THINK_SECONDS = (5.0, 12.0)
BUSY_BACKOFF_SECONDS = (0.2, 1.0)
NEVER_READERS = 8
HALF_FRAMES = 200
IDLE_CONNECTIONS = 8
FLOOD_FRAMES = 100_000
JOB_LINES = 40
JOB_PAGE = 7
PROBE_INTERVAL = 0.05
DRAIN_SECONDS = 60          # after the load: time for the last asks, then the batch job, to finish
PROGRESS_EVERY = 10
RSS_EVERY = 0.5

# The daemon's limits, short enough that the run sees each one act several times over.
# The run holds about 283 connections of one uid (64 + 8 + 200 + 8 + flooder, job client,
# prober), so the per-user limit sits above that; the limit probe then opens connections in
# batches until the first refusal, which must be a `busy` error frame and a close, never a hang.
# It stops at max_connections + 1, so it finds a refusal whichever limit the daemon applies to
# this uid (the per-user one, or the global one should root be exempt from the per-user one).
LIMITS = {
    "max_connections": 512,
    "max_connections_per_user": 320,
    "max_inflight_per_connection": 16,  # the flooder and the never-readers pass it at once
    "max_queued_sessions": 32,          # under the 64 normal clients: they meet `busy`, and the
                                        # queue left when the load ends drains in time
    "max_unsent_bytes": 262144,
    "stalled_reader_seconds": 10,
    "frame_timeout_seconds": 5,
    "idle_timeout_seconds": 15,
}
MIN_SECONDS = 30  # the load must outlast every timeout above, or their checks cannot pass

SETPRIV = "/usr/bin/setpriv"


class Closed(Exception):
    """The daemon closed the connection (or reset it)."""


def frame(obj):
    body = json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n q)
    return sorted_values[int(rank) - 1]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


def rounded(seconds):
    return None if seconds is None else round(seconds, 2)


def connect(path, deadline):
    """Connects before `deadline`. A Unix socket whose backlog is full refuses a non-blocking
    connect with EAGAIN at once, and a blocking one may wait for ever: so retry briefly."""
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
            s.setblocking(True)
            return s
        except (BlockingIOError, InterruptedError):
            s.close()
        except OSError:
            s.close()
            raise
        if time.monotonic() >= deadline:
            raise TimeoutError(f"could not connect to {path}: the listen backlog stayed full")
        time.sleep(0.02)


class Conn:
    """A framed connection read with deadlines, so no wait is unbounded."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def send(self, obj, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(frame(obj))
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed(str(e))

    def recv(self, deadline):
        """The next frame as a dict; None when `deadline` (monotonic) passes first."""
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if n > 64 << 20:
                    raise Closed(f"frame header announces {n} bytes")
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return json.loads(body)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError as e:
                raise Closed(str(e))
            if not data:
                raise Closed("end of stream")
            self.buf += data

    def close(self):
        self.sock.close()


def call(path, method, params=None, timeout=10.0):
    """One request on a fresh connection; the final frame (result or error)."""
    deadline = time.monotonic() + timeout
    conn = Conn(connect(path, deadline))
    try:
        conn.send({"id": 1, "method": method, "params": params or {}}, timeout=timeout)
        while True:
            reply = conn.recv(deadline)
            if reply is None:
                raise TimeoutError(f"{method}: no reply within {timeout} s")
            if "result" in reply or "error" in reply:
                return reply
    finally:
        conn.close()


def pump(sock, next_chunk, stop, on_progress):
    """Writes what `next_chunk()` returns (None: nothing more) as fast as the daemon takes it,
    never reading. Returns 'closed' when the daemon hangs up, 'sent' when all is written,
    'stopped' when `stop` is set first. Non-blocking with poll, so a paused reader on the daemon's
    side never blocks the thread past `stop`."""
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    chunk, off = None, 0
    while not stop.is_set():
        if chunk is None or off == len(chunk):
            chunk, off = next_chunk(), 0
            if chunk is None:
                return "sent"
            chunk = memoryview(chunk)
        for _, ev in poller.poll(200):
            if ev & (select.POLLHUP | select.POLLERR):
                return "closed"
            if ev & select.POLLOUT:
                try:
                    n = sock.send(chunk[off:off + 65536])
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    return "closed"
                off += n
                on_progress(n)
    return "stopped"


class Run:
    """Shared state of one run: the socket, the phases, and the running totals."""

    def __init__(self, socket_path, pid):
        self.socket = socket_path
        self.pid = pid
        self.load_over = threading.Event()   # no new normal work; abusers stop
        self.stop = threading.Event()        # everything stops
        self.lock = threading.Lock()
        self.t0 = None                       # monotonic start of the load
        self.drain_deadline = None
        self.totals = Counter()
        self.ask_latencies = []
        self.ask_errors = Counter()
        self.status_latencies = []
        self.status_errors = Counter()
        self.status_waiting_since = None     # when the prober's unanswered status was sent
        self.connected = Counter()           # connections up, per group, for the limit probe
        self.never_readers = []
        self.flooder = {}
        self.passive = {}                    # half-frame and idle connections' outcomes
        self.job = {}
        self.limit_probe = {}
        self.crashed = []                    # threads that died of an exception

    def add(self, key):
        with self.lock:
            self.totals[key] += 1

    def up(self, group):
        with self.lock:
            self.connected[group] += 1

    def connections_up(self):
        with self.lock:
            return sum(self.connected.values())

    def since_start(self):
        return time.monotonic() - self.t0


def guarded(run, name, body):
    """Thread target: an exception becomes a failure of the run, not a silent dead thread."""
    def target():
        try:
            body()
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            with run.lock:
                run.crashed.append(f"{name}: {type(e).__name__}: {e}")
    return threading.Thread(target=target, name=name, daemon=True)


# --- the groups -----------------------------------------------------------------------------

def normal_client(run, index):
    """One ask at a time, with a pause between, until the load ends; reads every frame and checks
    the steps add up to the answer's text. A `busy` reply is retried after a short backoff; a
    closed connection is reopened and the ask sent again."""
    rng = random.Random(index)
    params = {"prompt": f"Client {index} counts: 1, 2, 3,", "max_tokens": 8, "mode": "ar"}
    conn = None
    sends = 0
    ask = None         # the ask not ended yet: {"start", "steps", "id" while in flight, "send_at"}
    next_ask = time.monotonic()
    while not run.stop.is_set():
        now = time.monotonic()
        if ask is None:
            if run.load_over.is_set():
                break
            if now < next_ask:
                time.sleep(min(next_ask - now, 0.25))
                continue
            ask = {"start": now, "steps": [], "id": None, "send_at": now}
            run.add("asks_sent")
        if now > run.drain_deadline:
            break
        if conn is None:
            try:
                conn = Conn(connect(run.socket, now + 5))
            except (OSError, TimeoutError):
                run.add("normal_connect_failures")
                time.sleep(0.5)
                continue
            run.up("normal")
        try:
            if ask["id"] is None and ask["send_at"] <= now:
                sends += 1
                ask.update(id=f"n{index}-{sends}", steps=[])
                conn.send({"id": ask["id"], "method": "ask", "params": params})
            reply = conn.recv(time.monotonic() + 0.25)
        except (Closed, OSError) as e:
            run.add("normal_reconnects")
            with run.lock:
                run.ask_errors[f"connection lost: {e}"] += 1
            ask.update(id=None, send_at=time.monotonic() + 0.2)
            conn.close()
            conn = None
            continue
        if reply is None:
            continue
        if reply.get("id") != ask["id"] or ask["id"] is None:
            if "error" in reply and "id" not in reply:  # the daemon refuses or drops this connection
                with run.lock:
                    run.ask_errors[f"connection error {reply['error'].get('code')}"] += 1
            continue
        if reply.get("event") == "step":
            ask["steps"].append(reply.get("text", ""))
        elif "result" in reply:
            with run.lock:
                if reply["result"].get("text") == "".join(ask["steps"]):
                    run.totals["asks_done"] += 1
                    run.ask_latencies.append(time.monotonic() - ask["start"])
                else:
                    run.totals["asks_failed"] += 1
                    run.ask_errors["steps do not add up to the result's text"] += 1
            ask = None
            next_ask = time.monotonic() + rng.uniform(*THINK_SECONDS)
        elif "error" in reply:
            code = reply["error"].get("code")
            if code == "busy":
                run.add("busy_retries")
                ask.update(id=None, send_at=time.monotonic() + rng.uniform(*BUSY_BACKOFF_SECONDS))
            else:
                with run.lock:
                    run.totals["asks_failed"] += 1
                    run.ask_errors[f"{code}: {reply['error'].get('message')}"] += 1
                ask = None
    if conn is not None:
        conn.close()
    if ask is not None:
        run.add("asks_unfinished")


def never_reader(run, index):
    """Writes `status` requests (one in 100 an `ask`) as fast as the daemon takes them and never
    reads: its replies pile up in the daemon unless the daemon bounds them."""
    sock = connect(run.socket, time.monotonic() + 10)
    run.up("never_reader")
    start = time.monotonic()
    state = {"bytes": 0, "last_progress": start, "next": 0}

    def next_chunk():
        frames = []
        for _ in range(100):
            n = state["next"]
            state["next"] += 1
            if n % 100 == 0:
                frames.append(frame({"id": f"r{index}-{n}", "method": "ask",
                                     "params": {"prompt": "Never read: 1, 2,", "max_tokens": 8, "mode": "ar"}}))
            else:
                frames.append(frame({"id": f"r{index}-{n}", "method": "status"}))
        return b"".join(frames)

    def progress(n):
        state["bytes"] += n
        state["last_progress"] = time.monotonic()

    outcome = pump(sock, next_chunk, run.load_over, progress)
    end = time.monotonic()
    sock.close()
    if outcome == "closed":
        run.add("never_reader_closed")
    with run.lock:
        run.never_readers.append({
            "closed_by_daemon": outcome == "closed",
            "open_seconds": round(end - start, 1),
            "stalled_seconds": round(end - state["last_progress"], 1),
            "bytes_written": state["bytes"],
        })


def flooder(run):
    """10^5 asks as fast as the daemon takes them, never reading, then hang up."""
    one = len(frame({"id": "f000000", "method": "ask",
                     "params": {"prompt": "Flood", "max_tokens": 8, "mode": "ar"}}))
    data = b"".join(frame({"id": f"f{n:06d}", "method": "ask",
                           "params": {"prompt": "Flood", "max_tokens": 8, "mode": "ar"}})
                    for n in range(FLOOD_FRAMES))
    sock = connect(run.socket, time.monotonic() + 10)
    run.up("flooder")
    start = time.monotonic()
    state = {"bytes": 0, "given": False}

    def next_chunk():
        if state["given"]:
            return None
        state["given"] = True
        return data

    def progress(n):
        state["bytes"] += n

    outcome = pump(sock, next_chunk, run.load_over, progress)
    sock.close()
    run.flooder.update(outcome=outcome, seconds=round(time.monotonic() - start, 1),
                       frames_written=state["bytes"] // one)


def passive_connections(run):
    """HALF_FRAMES connections that send a header announcing 1000 bytes and 10 of them, and
    IDLE_CONNECTIONS that send nothing; then silence. Watches all of them for the daemon's
    close and for what it says first."""
    sel = selectors.DefaultSelector()
    failed_connects = Counter()
    for kind, count in (("half_frame", HALF_FRAMES), ("idle", IDLE_CONNECTIONS)):
        for _ in range(count):
            try:
                s = connect(run.socket, time.monotonic() + 10)
                if kind == "half_frame":
                    s.sendall(struct.pack(">I", 1000) + b'{"id":1,"m')
            except (OSError, TimeoutError):
                failed_connects[kind] += 1
                continue
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, {"kind": kind, "since": time.monotonic(), "data": bytearray()})
            run.up(kind)
    closed = {"half_frame": [], "idle": []}
    while sel.get_map() and not run.stop.is_set():
        for key, _ in sel.select(0.5):
            info = key.data
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if data:
                info["data"] += data
                continue
            sel.unregister(key.fileobj)
            key.fileobj.close()
            closed[info["kind"]].append({"after": time.monotonic() - info["since"],
                                         "error": first_error_code(info["data"])})
            run.add(f"{info['kind']}_closed")
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    for kind, count in (("half_frame", HALF_FRAMES), ("idle", IDLE_CONNECTIONS)):
        after = sorted(c["after"] for c in closed[kind])
        run.passive[kind] = {
            "opened": count - failed_connects[kind],
            "connect_failures": failed_connects[kind],
            "closed_by_daemon": len(after),
            "with_error_frame": Counter(c["error"] for c in closed[kind] if c["error"]),
            "closed_after_s": {"min": round(after[0], 1), "p50": round(percentile(after, 0.5), 1),
                               "max": round(after[-1], 1)} if after else None,
        }


def first_error_code(data):
    """The `error.code` of the first frame in `data`, if it is a whole error frame."""
    if len(data) < 4:
        return None
    (n,) = struct.unpack(">I", data[:4])
    try:
        reply = json.loads(bytes(data[4:4 + n]))
    except ValueError:
        return None
    return reply.get("error", {}).get("code") if isinstance(reply, dict) else None


def status_prober(run):
    """`status` every PROBE_INTERVAL on its own connection through the load; the round trip of
    each. A reply still awaited when the load ends counts with the time waited so far."""
    conn = Conn(connect(run.socket, time.monotonic() + 10))
    run.up("prober")
    n = 0
    try:
        while not run.load_over.is_set():
            n += 1
            sent = run.status_waiting_since = time.monotonic()
            conn.send({"id": n, "method": "status"})
            while True:
                reply = conn.recv(time.monotonic() + 0.25)
                if run.load_over.is_set() and reply is None:
                    run.status_waiting_since = None
                    with run.lock:
                        run.status_latencies.append(time.monotonic() - sent)
                        run.status_errors["unanswered when the load ended"] += 1
                    return
                if reply is not None and reply.get("id") == n:
                    break
            latency = time.monotonic() - sent
            run.status_waiting_since = None
            with run.lock:
                run.status_latencies.append(latency)
                if "error" in reply:
                    run.status_errors[reply["error"].get("code")] += 1
                elif reply["result"].get("state") != "ready":
                    run.status_errors[f"state {reply['result'].get('state')}"] += 1
            time.sleep(max(0.0, PROBE_INTERVAL - latency))
    except (Closed, OSError) as e:
        with run.lock:
            run.status_errors[f"prober connection lost: {e}"] += 1
    finally:
        conn.close()


def job_client(run):
    """Submits a JOB_LINES-line job with `now`, then pages jobs.results JOB_PAGE lines at a time
    until the job has ended; every pass over the pages must name each line exactly once."""
    jsonl = "".join(json.dumps({"custom_id": f"line-{i}", "prompt": f"Line {i}: one, two,", "max_tokens": 4,
                                "mode": "ar"}) + "\n" for i in range(JOB_LINES))
    expected = {f"line-{i}" for i in range(JOB_LINES)}
    conn = Conn(connect(run.socket, time.monotonic() + 10))
    run.up("job")
    seq = 0

    def request(method, params):
        nonlocal seq
        seq += 1
        conn.send({"id": seq, "method": method, "params": params})
        deadline = run.drain_deadline + 5  # slow is reported by the status prober; here only lost counts
        while True:
            reply = conn.recv(deadline)
            if reply is None:
                raise TimeoutError(f"{method}: no reply in time")
            if reply.get("id") == seq:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def read_all(job_id):
        """One pass over the pages: the job's state when the pass began, and its lines."""
        lines, after, state = [], 0, None
        while after is not None:
            page = request("jobs.results", {"id": job_id, "after": after, "limit": JOB_PAGE})
            state = state or page["state"]
            if len(page["lines"]) > JOB_PAGE:
                problems.append(f"a page of limit {JOB_PAGE} held {len(page['lines'])} lines")
            lines += page["lines"]
            after = page["next_after"]
        return state, lines

    problems = []
    passes = 0
    try:
        job = request("jobs.submit", {"content": jsonl, "now": True})
        run.job["id"] = job["id"]
        while time.monotonic() < run.drain_deadline and not run.stop.is_set():
            state, got = read_all(job["id"])
            passes += 1
            seen = Counter(line["custom_id"] for line in got)
            doubled = sorted(k for k, c in seen.items() if c > 1)
            lost, unknown = sorted(expected - set(seen)), sorted(set(seen) - expected)
            if doubled or lost or unknown:
                problems.append(f"pass {passes} ({state}): lost {lost[:5]}, doubled {doubled[:5]}, "
                                f"unknown {unknown[:5]}")
            line_states = Counter(line["state"] for line in got)
            run.job.update(state=state, line_states=line_states)
            if state in ("completed", "failed", "cancelled", "expired"):
                break
            time.sleep(0.5)
    except (Closed, OSError, TimeoutError, RuntimeError, KeyError) as e:
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        conn.close()
        run.job.update(passes=passes, problems=problems)


def limit_probe(run, expected_connections, ceiling):
    """Once the groups are connected, opens connections 32 at a time, each asking `status`,
    until the daemon refuses one or `ceiling` are open. A refusal must be a `busy` error frame
    followed by a close; an accepted connection answers `status`; no answer at all is a hang."""
    wait_until = time.monotonic() + 15
    while run.connections_up() < expected_connections and time.monotonic() < wait_until:
        time.sleep(0.1)
    held, accepted, refused, unanswered = [], 0, [], 0
    try:
        while len(held) < ceiling and not refused and not unanswered and not run.load_over.is_set():
            batch = []
            for _ in range(min(32, ceiling - len(held))):
                try:
                    conn = Conn(connect(run.socket, time.monotonic() + 5))
                except (OSError, TimeoutError):
                    unanswered += 1
                    continue
                batch.append(conn)
                try:
                    conn.send({"id": "limit", "method": "status"})
                except (OSError, Closed):
                    pass  # a refused connection may be closed already; its error frame is still there to read
            held += batch
            deadline = time.monotonic() + 10  # for the whole batch, so a hung daemon costs 10 s, not 10 s each
            for conn in batch:
                try:
                    reply = conn.recv(deadline)
                except Closed:
                    refused.append("closed without a frame")
                    continue
                if reply is None:
                    unanswered += 1
                elif "result" in reply:
                    accepted += 1
                else:
                    code = reply.get("error", {}).get("code")
                    try:
                        after = conn.recv(deadline)
                        refused.append(f"{code}, then no close" if after is None else f"{code}, then another frame")
                    except Closed:
                        refused.append(code)
    finally:
        for conn in held:
            conn.close()
    run.limit_probe.update(opened=len(held), accepted=accepted, refusals=Counter(refused),
                           unanswered=unanswered, others_connected=run.connections_up())


# --- the daemon -----------------------------------------------------------------------------

def models_dir():
    if os.environ.get("LOOKAHEAD_MODELS"):
        return os.environ["LOOKAHEAD_MODELS"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "lookaheadd", "models")


def write_config(path, models):
    # The daemon always loads a draft; tiny.gguf serves as both (mode `ar` never runs the draft),
    # and the exact verifier needs no embedding model.
    settings = {
        "model_dir": models,
        "target_model": "tiny.gguf",
        "draft_model": "tiny.gguf",
        "verifier": "exact",
        "threads": 2,
        "context_length": 4096,
        "max_prompt_tokens": 256,
        "max_sessions": 4,
        "max_batch_sessions": 2,
        "default_mode": "ar",
        "default_max_tokens": 8,
        "shutdown_grace_seconds": 2,
        **LIMITS,
    }
    with open(path, "w") as f:
        f.write("".join(f"{k} = {v}\n" for k, v in settings.items()))


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_daemon(binary, workdir, log):
    socket_path = os.path.join(workdir, "lookaheadd.sock")
    config = os.path.join(workdir, "lookaheadd.conf")
    write_config(config, models_dir())
    # setpriv sets PR_SET_PDEATHSIG before it executes the daemon: if this script dies, even by
    # SIGKILL, the daemon follows. The kernel sends it when the forking *thread* ends, and this
    # is the main thread, which lives as long as the script. A daemon that finds no libgomp wait
    # policy in its environment sets one and executes itself again, from a thread other than its
    # first, and the kernel does not carry the death signal over to that thread: so the policy
    # lookaheadd would set (GOMP_SPINCOUNT=1000) is set here, and it never re-executes.
    env = dict(os.environ)
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = "1000"
    proc = subprocess.Popen(
        [SETPRIV, "--pdeathsig", "KILL", "--", binary, "--config", config, "--socket", socket_path,
         "--state-dir", os.path.join(workdir, "state")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"lookaheadd exited with status {proc.returncode} before serving")
        try:
            reply = call(socket_path, "status", timeout=2)
            if reply.get("result", {}).get("state") == "ready":
                return proc, socket_path
        except (OSError, TimeoutError, Closed):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("lookaheadd did not answer status with state ready within 120 s")
        time.sleep(0.2)


def stop_daemon(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)  # shutdown_grace_seconds is 2
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(cannot read {path}: {e})"


# --- the run ----------------------------------------------------------------------------------

def drive(run, proc, seconds, baseline):
    """Starts every group, samples the daemon's RSS, prints progress, ends the load after
    `seconds`, then waits (up to DRAIN_SECONDS) for the normal clients and the job to finish.
    Returns the peak RSS and the threads that did not end."""
    expected_connections = NORMAL_CLIENTS + NEVER_READERS + HALF_FRAMES + IDLE_CONNECTIONS + 3
    workers = [guarded(run, f"normal-{i}", lambda i=i: normal_client(run, i)) for i in range(NORMAL_CLIENTS)]
    workers.append(guarded(run, "job", lambda: job_client(run)))
    abusers = [guarded(run, f"never-reader-{i}", lambda i=i: never_reader(run, i)) for i in range(NEVER_READERS)]
    abusers += [guarded(run, "flooder", lambda: flooder(run)),
                guarded(run, "passive", lambda: passive_connections(run)),
                guarded(run, "prober", lambda: status_prober(run)),
                guarded(run, "limit-probe", lambda: limit_probe(run, expected_connections,
                                                                LIMITS["max_connections"] + 1))]
    run.t0 = time.monotonic()
    run.drain_deadline = run.t0 + seconds + DRAIN_SECONDS
    for t in workers + abusers:
        t.start()
    peak = baseline
    next_progress = PROGRESS_EVERY
    while proc.poll() is None and time.monotonic() < run.drain_deadline:
        if run.since_start() >= seconds:
            run.load_over.set()
            if not any(t.is_alive() for t in workers):
                break
        peak = max(peak, rss_mb(proc.pid) or 0)
        if run.since_start() >= next_progress:
            next_progress += PROGRESS_EVERY
            print_progress(run, peak, baseline)
        time.sleep(RSS_EVERY)
    run.load_over.set()
    run.stop.set()
    join_by = time.monotonic() + 10
    for t in workers + abusers:
        t.join(max(0.0, join_by - time.monotonic()))
    return peak, [t.name for t in workers + abusers if t.is_alive()]


def print_progress(run, peak, baseline):
    with run.lock:
        lat = sorted(run.status_latencies)
        counts = Counter(run.totals)
    waiting_since = run.status_waiting_since
    waiting = (f", one unanswered for {time.monotonic() - waiting_since:.0f} s"
               if waiting_since is not None and time.monotonic() - waiting_since > 1 else "")
    print(f"[{run.since_start():5.0f} s] asks {counts['asks_done']}/{counts['asks_sent']} done, "
          f"{counts['busy_retries']} busy retries, {counts['asks_failed']} failed | "
          f"RSS {rss_mb(run.pid) or 0:.0f} MB (peak {peak:.0f}, baseline {baseline:.0f}) | "
          f"status p99 {ms(percentile(lat, 0.99)) if lat else 'n/a'} ms over {len(lat)}{waiting} | "
          f"closed: half-frame {counts['half_frame_closed']}/{HALF_FRAMES}, "
          f"idle {counts['idle_closed']}/{IDLE_CONNECTIONS}, "
          f"never-reader {counts['never_reader_closed']}/{NEVER_READERS} | "
          f"job {run.job.get('line_states', {}).get('done', 0)}/{JOB_LINES} done", flush=True)


def evaluate(run, args, baseline, peak, stuck, exit_code, final_status):
    """The checks, as failure lines, and the summary."""
    failures = []

    def check(ok, name, why):
        if not ok:
            failures.append(f"{name}: {why}")

    lat = sorted(run.status_latencies)
    asks = sorted(run.ask_latencies)
    totals = run.totals
    p99 = percentile(lat, 0.99)
    closed_readers = sum(r["closed_by_daemon"] for r in run.never_readers)
    half = run.passive.get("half_frame", {})
    lp = run.limit_probe
    check(exit_code is None, "alive", f"lookaheadd exited during the run with status {exit_code}")
    check("result" in (final_status or {}), "final status", f"no status result at the end: {final_status}")
    check(peak - baseline <= args.rss_margin_mb, "rss",
          f"peak {peak:.0f} MB is {peak - baseline:.0f} MB over the baseline {baseline:.0f} MB "
          f"(margin {args.rss_margin_mb:.0f} MB)")
    check(totals["asks_done"] == totals["asks_sent"] > 0, "asks",
          f"{totals['asks_done']} of {totals['asks_sent']} asks answered: {totals['asks_failed']} failed, "
          f"{totals['asks_unfinished']} unfinished; errors {dict(run.ask_errors.most_common(5))}")
    # They pause less than idle_timeout_seconds between an answer and their next ask.
    check(totals["normal_reconnects"] == 0, "normal connections kept",
          f"{totals['normal_reconnects']} normal clients lost their connection: {dict(run.ask_errors.most_common(3))}")
    check(p99 is not None and p99 * 1000 <= args.status_p99_ms, "status latency",
          f"p99 {ms(p99)} ms over {len(lat)} calls (bound {args.status_p99_ms:.0f} ms)")
    check(not run.status_errors, "status replies", f"{dict(run.status_errors)}")
    check(not run.job.get("problems") and run.job.get("state") == "completed"
          and run.job.get("line_states") == Counter(done=JOB_LINES), "job",
          f"state {run.job.get('state')}, last lines {dict(run.job.get('line_states') or {})}, "
          f"problems {run.job.get('problems')}")
    for kind, count in (("half_frame", HALF_FRAMES), ("idle", IDLE_CONNECTIONS)):
        p = run.passive.get(kind, {})
        check(p.get("closed_by_daemon") == count, f"{kind} connections closed",
              f"{p.get('closed_by_daemon')} of {count} closed by the daemon, "
              f"{p.get('connect_failures')} could not connect")
    check(sum(half.get("with_error_frame", Counter()).values()) == half.get("closed_by_daemon"),
          "half-frame error frames", f"of {half.get('closed_by_daemon')} closed, these got an error frame "
          f"first: {dict(half.get('with_error_frame', {}))}")
    check(closed_readers == NEVER_READERS, "never-readers closed",
          f"{closed_readers} of {NEVER_READERS} closed by the daemon")
    check(bool(lp.get("refusals")) and set(lp["refusals"]) == {"busy"} and not lp.get("unanswered"),
          "connection limit", f"{lp.get('opened')} probe connections opened beside {lp.get('others_connected')} "
          f"others: refusals {dict(lp.get('refusals') or {})}, unanswered {lp.get('unanswered')}")
    check(not run.crashed and not stuck, "harness", f"threads crashed {run.crashed[:5]}, stuck {stuck[:5]}")

    summary = {
        "seconds": args.seconds,
        "rss_mb": {"baseline": round(baseline), "peak": round(peak), "margin": args.rss_margin_mb},
        "status_ms": {"n": len(lat), "p50": ms(percentile(lat, 0.5)), "p99": ms(p99),
                      "max": ms(lat[-1] if lat else None), "errors": dict(run.status_errors)},
        "asks": {"sent": totals["asks_sent"], "done": totals["asks_done"], "failed": totals["asks_failed"],
                 "unfinished": totals["asks_unfinished"], "busy_retries": totals["busy_retries"],
                 "reconnects": totals["normal_reconnects"], "connect_failures": totals["normal_connect_failures"],
                 "p50_s": rounded(percentile(asks, 0.5)), "p99_s": rounded(percentile(asks, 0.99)),
                 "errors": dict(run.ask_errors.most_common(5))},
        "never_readers": {"closed_by_daemon": closed_readers, "of": NEVER_READERS,
                          "each": sorted(run.never_readers, key=lambda r: r["open_seconds"])},
        "flooder": run.flooder,
        "half_frame": half,
        "idle": run.passive.get("idle"),
        "job": run.job,
        "limit_probe": lp,
        "limits": LIMITS,
        "failures": failures,
    }
    return failures, summary


def report(summary, exit_status):
    s = summary
    print(f"RSS: baseline {s['rss_mb']['baseline']} MB, peak {s['rss_mb']['peak']} MB "
          f"(bound: baseline + {s['rss_mb']['margin']:.0f} MB)")
    print(f"status: {s['status_ms']['n']} calls, p50 {s['status_ms']['p50']} ms, "
          f"p99 {s['status_ms']['p99']} ms, max {s['status_ms']['max']} ms")
    a = s["asks"]
    print(f"asks: {a['done']}/{a['sent']} answered, {a['busy_retries']} busy retries, {a['failed']} failed, "
          f"{a['unfinished']} unfinished, {a['reconnects']} reconnects; p50 {a['p50_s']} s, p99 {a['p99_s']} s")
    nr = s["never_readers"]
    print(f"never-readers closed by the daemon: {nr['closed_by_daemon']}/{NEVER_READERS}, after "
          f"{[r['open_seconds'] for r in nr['each'] if r['closed_by_daemon']]} s open "
          f"({[r['stalled_seconds'] for r in nr['each'] if r['closed_by_daemon']]} s after their last write)")
    print(f"flooder: {s['flooder']}")
    for kind in ("half_frame", "idle", "job", "limit_probe"):
        print(f"{kind}: {json.dumps(s[kind], sort_keys=True)}")
    print(f"lookaheadd exit status after SIGTERM: {exit_status}")
    print("ABUSE-SUMMARY " + json.dumps(s, sort_keys=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--daemon", required=True, help="the lookaheadd binary, e.g. .build/debug/lookaheadd")
    ap.add_argument("--seconds", type=float, default=90, help=f"seconds of load (at least {MIN_SECONDS}; default 90)")
    ap.add_argument("--rss-margin-mb", type=float, default=300,
                    help="how far the daemon's peak RSS may rise above its baseline (default 300)")
    ap.add_argument("--status-p99-ms", type=float, default=2000,
                    help="bound on the status round trip's p99 under load (default 2000)")
    args = ap.parse_args()
    if args.seconds < MIN_SECONDS:
        ap.error(f"--seconds must be at least {MIN_SECONDS}: the daemon's timeouts need that long to act")
    for path, why in ((args.daemon, "build it first"), (SETPRIV, "Debian: util-linux"),
                      (os.path.join(models_dir(), "tiny.gguf"), "`make models` fetches it")):
        if not os.path.exists(path):
            ap.error(f"{path} is missing ({why})")

    # Every connection is a descriptor, here and in the daemon (which inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))

    workdir = tempfile.mkdtemp(prefix="lookaheadd-abuse-")
    log_path = os.path.join(workdir, "daemon.log")
    proc = None
    failures, summary = [], None
    try:
        with open(log_path, "wb") as log:
            proc, socket_path = start_daemon(os.path.abspath(args.daemon), workdir, log)
        # One ask first, so the baseline includes what the first pass allocates: the bound is
        # then on what the load adds, not on warming up.
        warm = call(socket_path, "ask", {"prompt": "Warm up: 1, 2,", "max_tokens": 8, "mode": "ar"}, timeout=60)
        if "result" not in warm:
            raise RuntimeError(f"warm-up ask failed: {warm}")
        baseline = rss_mb(proc.pid)
        print(f"lookaheadd pid {proc.pid} ready in {workdir}; RSS baseline {baseline:.0f} MB", flush=True)

        run = Run(socket_path, proc.pid)
        peak, stuck = drive(run, proc, args.seconds, baseline)
        # The daemon must still be there, and answering, after all this.
        exit_code = proc.poll()
        final_status = None
        if exit_code is None:
            try:
                final_status = call(socket_path, "status", timeout=5)
            except (OSError, TimeoutError, Closed) as e:
                final_status = {"error": {"code": "no reply", "message": str(e)}}
        failures, summary = evaluate(run, args, baseline, peak, stuck, exit_code, final_status)
    except (RuntimeError, OSError, TimeoutError, Closed) as e:
        failures.append(f"setup: {e}")
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        exit_status = stop_daemon(proc) if proc is not None else None

    if summary:
        report(summary, exit_status)
    for f in failures:
        print(f"FAIL {f}")
    if failures:
        print(f"--- lookaheadd output, last lines ---\n{tail(log_path)}", end="")
    else:
        print("OK: every check held")
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


def interrupted(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    # SIGTERM (a CI timeout, make's kill) takes the same way out as Ctrl-C: the daemon is stopped
    # and the temp directory removed.
    signal.signal(signal.SIGTERM, interrupted)
    sys.exit(main())
