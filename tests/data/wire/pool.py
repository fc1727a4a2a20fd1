#!/usr/bin/python3
"""A stand-in mining pool for the real-node tests: enough of stratum (JSON lines) to answer a login
and accept shares. It runs in a pod on the real node, inside the node's network namespace, and
mines nothing. Any other line gets ``pong`` (the benign probe's request)."""

import json
import socketserver


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            try:
                req = json.loads(line)
            except ValueError:
                self.wfile.write(b"pong\n")
                continue
            if req.get("method") == "login":
                result = {"id": "w1", "job": {"job_id": "1", "blob": "00" * 76, "target": "ffffff00"}, "status": "OK"}
            else:
                result = {"status": "OK"}
            self.wfile.write(
                json.dumps({"id": req.get("id"), "jsonrpc": "2.0", "error": None, "result": result}).encode() + b"\n"
            )


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    print("pool listening on :3333", flush=True)
    server = Server(("0.0.0.0", 3333), Handler)  # noqa: S104 - the pod's own network namespace
    server.serve_forever()
