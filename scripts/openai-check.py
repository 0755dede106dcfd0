#!/usr/bin/env python3
"""The OpenAI-compatible HTTP surface against real clients (issue 15): the `openai` Python package,
curl over the Unix socket and TCP, and prometheus_client's parser for /metrics.

Starts lookaheadd in a temp directory on draft.gguf (a small chat model; tiny.gguf has no chat
template) with an HTTP Unix socket, a loopback TCP port and an API key, and checks: chat completions
whole and streamed (the stream says what the whole answer says, usage included), text completions,
/v1/models, errors in OpenAI's shape with the right status (bad key, unknown model, bad and
unsupported parameters, malformed JSON, an oversize body), a client that leaves mid-stream frees its
session, /metrics parses, every other client is still served, and a TCP listener beyond loopback
without a key stops the daemon with a configuration error. Exits 0 only if every check holds.

Usage: scripts/openai-check.py --daemon .build/debug/lookaheadd   (run with a Python that has
openai and prometheus_client: `make pyclients` makes one, scripts/pyclients.sh)
Models: $LOOKAHEAD_MODELS, else ${XDG_CACHE_HOME:-$HOME/.cache}/lookaheadd/models.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import openai
from prometheus_client.parser import text_string_to_metric_families

SETPRIV = "/usr/bin/setpriv"
KEY = "test-key-6c1f"
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def models_dir():
    if os.environ.get("LOOKAHEAD_MODELS"):
        return os.environ["LOOKAHEAD_MODELS"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "lookaheadd", "models")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def native_call(path, method, params=None):
    """One request on the framed socket: 4-byte big-endian length, then JSON."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        payload = json.dumps({"id": 1, "method": method, "params": params or {}}).encode()
        s.sendall(struct.pack(">I", len(payload)) + payload)
        head = b""
        while len(head) < 4:
            head += s.recv(4 - len(head))
        (n,) = struct.unpack(">I", head)
        body = b""
        while len(body) < n:
            body += s.recv(n - len(body))
        return json.loads(body)


def write_config(workdir, port, extra=""):
    config = os.path.join(workdir, "lookaheadd.conf")
    key_file = os.path.join(workdir, "api-key")
    with open(key_file, "w") as f:
        f.write(KEY + "\n")
    os.chmod(key_file, 0o600)
    with open(config, "w") as f:
        f.write(f"""model_dir = {models_dir()}
target_model = draft.gguf
draft_model = draft.gguf
verifier = exact
default_mode = ar
default_max_tokens = 16
context_length = 4096
# Repeated questions start from the prefix cache; these kernels make that change no token, so the
# answers below can be compared for equality.
batch_invariant = true
max_prompt_tokens = 512
max_frame_bytes = 65536
shutdown_grace_seconds = 2
http_listen = {workdir}/http.sock, 127.0.0.1:{port}
api_key_file = {key_file}
{extra}""")
    return config


def start(binary, workdir, config, log):
    env = dict(os.environ)
    env.setdefault("GOMP_SPINCOUNT", "1000")  # as in abuse.py: no re-exec, so the death signal holds
    return subprocess.Popen(
        [SETPRIV, "--pdeathsig", "KILL", "--", binary, "--config", config,
         "--socket", os.path.join(workdir, "lookaheadd.sock"), "--state-dir", os.path.join(workdir, "state")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)


def curl(*args):
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=120)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


def wait_ready(proc, sock):
    deadline = time.monotonic() + 120
    saw_loading = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lookaheadd exited with {proc.returncode}")
        if os.path.exists(sock):
            code, body = curl("--unix-socket", sock, "http://localhost/health")
            if code == 503 and "loading" in body:
                saw_loading = True
            if code == 200:
                return saw_loading
        time.sleep(0.05)
    raise RuntimeError("no 200 from /health within 120 s")


def run_checks(workdir, port, proc):
    sock = os.path.join(workdir, "http.sock")
    base = f"http://127.0.0.1:{port}/v1"
    client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=120)
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 12 + 30?"}]

    models = client.models.list()
    model_id = models.data[0].id
    check(len(models.data) == 1 and model_id, f"/v1/models lists the target ({model_id})")

    whole = client.chat.completions.create(model=model_id, messages=messages, max_tokens=16)
    content = whole.choices[0].message.content
    check(bool(content) and whole.choices[0].finish_reason in ("stop", "length"), f"chat completion answered: {content!r}")
    check(whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
          and whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens, "usage counts tokens")
    check(whole.model == model_id and whole.id.startswith("chatcmpl-"), "the answer names the model and has a chatcmpl id")
    stats = (whole.model_extra or {}).get("lookahead", {})
    check(stats.get("mode") == "ar" and "stats" in stats, "per-request lookahead stats ride along")

    stream = client.chat.completions.create(model=model_id, messages=messages, max_tokens=16, stream=True,
                                            stream_options={"include_usage": True})
    text, reasoning, usage, finish = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            finish = choice.finish_reason or finish
    check(text == content, f"the stream says what the whole answer says ({text!r})")
    check(reasoning == "" and whole.choices[0].message.model_extra.get("reasoning_content") is None,
          "a model that does not think has no reasoning_content")
    check(usage is not None and usage.completion_tokens == whole.usage.completion_tokens, "include_usage: the last chunk counts")
    cached = whole.usage.prompt_tokens_details.cached_tokens if whole.usage.prompt_tokens_details else None
    again = usage.prompt_tokens_details.cached_tokens if usage and usage.prompt_tokens_details else None
    check(cached is not None and again == whole.usage.prompt_tokens - 1,
          f"the same question again starts from the prefix cache (cached_tokens {cached}, then {again} of {whole.usage.prompt_tokens})")
    check(finish == whole.choices[0].finish_reason, "the stream ends with the same finish_reason")

    completion = client.completions.create(model=model_id, prompt="def add(a, b):\n    return", max_tokens=8)
    check(completion.object == "text_completion" and completion.choices[0].text != "", f"text completion: {completion.choices[0].text!r}")

    stopped = client.chat.completions.create(model=model_id, messages=messages, max_tokens=16, stop=["42"])
    check("42" not in (stopped.choices[0].message.content or "") and stopped.choices[0].finish_reason == "stop",
          f"stop ends the content before it: {stopped.choices[0].message.content!r}")

    # Errors: the openai client raises its typed exceptions from the status and the body.
    def raises(kind, call, what):
        try:
            call()
            check(False, f"{what}: no error")
        except kind as e:
            body = e.body if isinstance(e.body, dict) else {}
            check("message" in body and "type" in body, f"{what}: {kind.__name__} {e.status_code}, OpenAI-shaped")
        except Exception as e:  # noqa: BLE001 - any other error is the failure reported
            check(False, f"{what}: {type(e).__name__}: {e}")

    bad_key = openai.OpenAI(base_url=base, api_key="wrong", max_retries=0)
    raises(openai.AuthenticationError, lambda: bad_key.models.list(), "a wrong key")
    raises(openai.NotFoundError, lambda: client.chat.completions.create(model="gpt-4o", messages=messages), "an unknown model")
    raises(openai.BadRequestError, lambda: client.chat.completions.create(model=model_id, messages=messages, n=2), "n = 2")
    raises(openai.BadRequestError, lambda: client.chat.completions.create(model=model_id, messages=messages, temperature=-1),
           "a negative temperature")
    raises(openai.BadRequestError, lambda: client.chat.completions.create(model=model_id, messages=[{"role": "assistant", "content": "x"}]),
           "a conversation that does not end with the user")

    code, body = curl("--unix-socket", sock, "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                      "-d", "{not json", "http://localhost/v1/chat/completions")
    check(code == 400 and json.loads(body)["error"]["type"] == "invalid_request_error", "curl --unix-socket: malformed JSON → 400")
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 70000}]})
    code, body = curl("-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json", "--data-binary", big,
                      f"http://127.0.0.1:{port}/v1/chat/completions")
    check(code == 413 and "error" in json.loads(body), "an oversize body → 413")
    code, body = curl("--unix-socket", sock, "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                      "-d", json.dumps({"messages": messages, "max_tokens": 8}), "http://localhost/v1/chat/completions")
    check(code == 200 and json.loads(body)["choices"][0]["message"]["content"], "curl --unix-socket: a chat completion")
    code, body = curl("--unix-socket", sock, "http://localhost/health")
    check(code == 200 and json.loads(body) == {"status": "ok"}, "curl --unix-socket /health without a key")

    # A client that leaves mid-stream: its session ends as cancelled.
    native = os.path.join(workdir, "lookaheadd.sock")
    before = native_call(native, "status")["result"]["requests"]["cancelled"]
    long = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Count from 1 to 500, one number a line."}],
                                          max_tokens=400, stream=True)
    for chunk in long:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    long.close()
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        status = native_call(native, "status")["result"]
        if status["requests"]["cancelled"] > before and status["sessions"]["active"] == 0:
            break
        time.sleep(0.1)
    check(status["requests"]["cancelled"] == before + 1 and status["sessions"]["active"] == 0,
          "a client that disconnects mid-stream frees its session")

    code, text = curl("-H", f"Authorization: Bearer {KEY}", f"http://127.0.0.1:{port}/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)} if code == 200 else {}
    check(code == 200 and len(families) >= 5, f"/metrics parses ({len(families)} families)")
    for name in METRICS:
        check(name in families, f"/metrics has {name}")

    after = client.chat.completions.create(model=model_id, messages=messages, max_tokens=16)
    check(after.choices[0].message.content == content, "after all that, the same question gets the same answer")
    check(proc.poll() is None, "the daemon is alive")


# Families /metrics must expose (prometheus_client drops a counter's _total suffix from the name).
METRICS = ["lookaheadd_requests", "lookaheadd_generation_tokens", "lookaheadd_prompt_tokens",
           "lookaheadd_spec_decode_num_drafts", "lookaheadd_spec_decode_num_draft_tokens",
           "lookaheadd_spec_decode_num_accepted_tokens", "lookaheadd_lookahead_steps_verified",
           "lookaheadd_lookahead_steps_accepted", "lookaheadd_e2e_request_latency_seconds",
           "lookaheadd_time_to_first_token_seconds", "lookaheadd_num_requests_waiting", "lookaheadd_num_requests_running",
           "lookaheadd_kv_cells", "lookaheadd_engine_threads", "lookaheadd_tokens_per_second",
           "lookaheadd_prefix_cache_queries", "lookaheadd_prefix_cache_hits", "lookaheadd_prefix_cache_cells"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--daemon", required=True)
    args = parser.parse_args()
    for path, why in ((os.path.join(models_dir(), "draft.gguf"), "`make models` fetches it"), (SETPRIV, "util-linux"),
                      (shutil.which("curl") or "/usr/bin/curl", "apt-get install curl")):
        if not os.path.exists(path):
            sys.exit(f"openai-check: {path} is missing ({why})")
    workdir = tempfile.mkdtemp(prefix="lookaheadd-openai-")
    log_path = os.path.join(workdir, "daemon.log")
    t0 = time.monotonic()
    try:
        port = free_port()
        with open(log_path, "w") as log:
            open_config = write_config(workdir, port, extra="")
            with open(open_config) as f:
                text = f.read()
            refused_config = os.path.join(workdir, "open.conf")
            with open(refused_config, "w") as f:
                f.write(text.replace(f"127.0.0.1:{port}", f"0.0.0.0:{port}").replace("api_key_file", "#api_key_file"))
            refused = subprocess.run([args.daemon, "--config", refused_config], capture_output=True, text=True, timeout=30)
            check(refused.returncode == 78 and "api_key_file" in refused.stderr,
                  f"0.0.0.0 without a key is refused at start ({refused.returncode}: {refused.stderr.strip()[:160]})")
            proc = start(args.daemon, workdir, open_config, log)
            try:
                saw_loading = wait_ready(proc, os.path.join(workdir, "http.sock"))
                check(saw_loading, "/health said 503 loading before it said 200")
                run_checks(workdir, port, proc)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    except Exception as e:  # noqa: BLE001 - reported as a failure with the daemon's log
        failures.append(f"{type(e).__name__}: {e}")
        print(f"FAIL {type(e).__name__}: {e}")
    print(f"openai-check: {len(failures)} failure(s) in {time.monotonic() - t0:.0f} s")
    if failures:
        with open(log_path, errors="replace") as f:
            print("--- daemon log (last 30 lines) ---\n" + "".join(f.readlines()[-30:]))
        sys.exit(1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
