#!/usr/bin/env python3
"""The kube-apiserver's way into the real node's network namespace (hack/realnode.py).

The apiserver runs on the host's loopback; the kubelet, the pods and the NetworkPolicy dataplane
of the real node ``real-0`` live in a network namespace of their own, so the apiserver has no
route to them (and must never look for one on the host's interfaces). Its egress selector
(``--egress-selector-config-file``, egress ``cluster``) sends every connection to a node, a pod
or a service as an HTTP CONNECT over a UNIX socket instead: this small proxy listens on that
socket from inside the node's namespace and connects there. Destinations outside the namespace's
own ranges (``--allow``) are refused, so nothing leaves the namespace through it.

    realnode_egress.py --socket PATH --allow 10.88.0.0/16 [--allow ...]

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def allowed(host: str, nets: list[ipaddress.IPv4Network]) -> bool:
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(addr in net for net in nets)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, nets: list[ipaddress.IPv4Network]) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        writer.close()
        return
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) < 2 or parts[0] != "CONNECT" or ":" not in parts[1]:
        writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
        writer.close()
        return
    host, _, port = parts[1].rpartition(":")
    if not allowed(host, nets) or not port.isdigit():
        writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        writer.close()
        return
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 10)
    except (OSError, TimeoutError) as exc:
        writer.write(f"HTTP/1.1 502 Bad Gateway\r\n\r\n{exc}".encode())
        writer.close()
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def serve(path: str, nets: list[ipaddress.IPv4Network]) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(lambda r, w: handle(r, w, nets), path=path)
    os.chmod(path, 0o600)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--allow", action="append", required=True, help="a destination range (CIDR)")
    args = ap.parse_args(argv)
    nets = [ipaddress.IPv4Network(n) for n in args.allow]
    asyncio.run(serve(args.socket, nets))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
