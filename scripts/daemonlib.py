"""What the benchmark scripts share: a lookaheadd started on a scratch directory, its socket's
length-prefixed JSON calls, and the vendored GSM8K problems."""
import json, os, socket, struct, subprocess, sys, time

GSM8K = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Data", "gsm8k", "test.jsonl")


def call(path, method, params=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    body = json.dumps({"id": 1, "method": method, "params": params or {}}).encode()
    s.sendall(struct.pack(">I", len(body)) + body)
    buf = b""
    try:
        while True:
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                n = struct.unpack(">I", buf[:4])[0]
                m = json.loads(buf[4:4 + n])
                buf = buf[4 + n:]
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                if "result" in m:
                    return m["result"]
            d = s.recv(65536)
            if not d:
                raise RuntimeError("%s: connection closed" % method)
            buf += d
    finally:
        s.close()


def start(binary, workdir, config=""):
    """lookaheadd in `workdir` (made if need be) with `config` lines added, once it answers `status` as
    ready: (process, socket path)."""
    os.makedirs(workdir, exist_ok=True)
    sock = os.path.join(workdir, "d.sock")
    path = os.path.join(workdir, "lookaheadd.conf")
    with open(path, "w") as f:
        f.write("socket = %s\nstate_dir = %s\n%s" % (sock, os.path.join(workdir, "state"), config))
    log = open(os.path.join(workdir, "daemon.log"), "w")
    proc = subprocess.Popen([binary, "--config", path], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(1200):
        if proc.poll() is not None:
            sys.exit("lookaheadd exited during start-up; see %s" % log.name)
        try:
            if call(sock, "status")["state"] == "ready":
                return proc, sock
        except (OSError, RuntimeError):
            pass
        time.sleep(0.25)
    sys.exit("lookaheadd did not become ready")


def problems():
    return [json.loads(line) for line in open(GSM8K)]
