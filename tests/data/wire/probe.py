#!/usr/bin/python3
"""A benign client for the real-node tests: every 0.1 s it opens a new TCP connection to each
``name=host:port`` target, sends a line and reads one back, and prints a JSON line per attempt
(``t`` is the wall clock)."""

import json
import socket
import sys
import time

targets = [(name, addr.rsplit(":", 1)) for name, addr in (a.split("=", 1) for a in sys.argv[1:])]

while True:
    for name, (host, port) in targets:
        try:
            with socket.create_connection((host, int(port)), timeout=1) as sock:
                sock.sendall(b"hello\n")
                ok, msg = bool(sock.makefile("r").readline()), "answered"
        except ConnectionRefusedError:
            ok, msg = False, "connection refused"
        except OSError as exc:
            ok, msg = False, f"{type(exc).__name__}: {exc}"
        print(json.dumps({"t": round(time.time(), 3), "target": name, "ok": ok, "msg": msg}), flush=True)
    time.sleep(0.1)
