#!/usr/bin/python3
"""A stand-in for XMRig on the wire, for the real-node tests: it mines nothing.

Called with XMRig's own options (``-o stratum+tcp://HOST:PORT -u WALLET ...``), so the pod looks
like a miner to minerguard. It prints one JSON line per attempt (``t`` is the wall clock):

* ``new``: a new connection and login every 0.1 s ("share accepted" or why it failed);
* ``established``: one connection opened at start and kept, a share every 0.25 s (whether a
  quarantine cuts a connection that already exists: conntrack);
* it also listens on 8080 (XMRig's HTTP API port) so that connections *to* it can be probed.
"""

import json
import socket
import sys
import threading
import time

args = sys.argv[1:]
url = args[args.index("-o") + 1]
user = args[args.index("-u") + 1]
host, port = url.split("://", 1)[1].rsplit(":", 1)
lock = threading.Lock()


def log(kind: str, ok: bool, msg: str) -> None:
    with lock:
        print(json.dumps({"t": round(time.time(), 3), "kind": kind, "ok": ok, "msg": msg}), flush=True)


def why(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def login(sock: socket.socket, reader) -> str:
    params = {"login": user, "pass": "x", "agent": "XMRig/6.21.0"}
    sock.sendall(json.dumps({"id": 1, "jsonrpc": "2.0", "method": "login", "params": params}).encode() + b"\n")
    line = reader.readline()
    if not line:
        raise ConnectionResetError("closed by the pool")
    return str(json.loads(line)["result"]["id"])


def fresh() -> None:
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1) as sock:
                login(sock, sock.makefile("r"))
                log("new", True, "share accepted")
        except OSError as exc:
            log("new", False, why(exc))
        time.sleep(0.1)


def kept() -> None:
    while True:
        try:
            sock = socket.create_connection((host, int(port)), timeout=1)
            reader = sock.makefile("r")
            worker = login(sock, reader)
            log("established", True, "logged in")
            break
        except OSError as exc:
            log("established", False, why(exc))
            time.sleep(0.25)
    n = 0
    while True:
        n += 1
        share = {"id": n + 1, "method": "submit", "params": {"id": worker, "job_id": "1", "nonce": f"{n:08x}"}}
        try:
            sock.sendall(json.dumps(share).encode() + b"\n")
            if not reader.readline():
                raise ConnectionResetError("closed by the pool")
            log("established", True, "share accepted")
        except OSError as exc:
            log("established", False, why(exc))
            if not isinstance(exc, TimeoutError):
                return
        time.sleep(0.25)


def api() -> None:
    srv = socket.create_server(("0.0.0.0", 8080))  # noqa: S104 - the pod's own network namespace
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"xmrig-api\n")


if __name__ == "__main__":
    for target in (fresh, kept, api):
        threading.Thread(target=target, daemon=True).start()
    while True:
        time.sleep(3600)
