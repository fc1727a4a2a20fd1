"""The ``minerguard`` command line: ``run`` starts the operator, ``scan`` checks manifests offline,
``incident describe`` summarises a MinerIncident for a responder."""

from __future__ import annotations

import argparse
import sys

from minerguard import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minerguard", description="Find cryptominers in Kubernetes and contain them.")
    parser.add_argument("--version", action="version", version=f"minerguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator against the cluster in KUBECONFIG or in-cluster")
    run.add_argument("--namespace", help="namespace the operator runs in (default: $MINERGUARD_NAMESPACE)")
    run.add_argument("--standalone", action="store_true", help="no peering: this process acts alone")
    run.add_argument("--peering", default=None, help="kopf peering name for HA (default: minerguard)")
    run.add_argument("--liveness", default=None, help="health endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--verbose", action="store_true")
    sub.add_parser("scan", help="evaluate manifests against policies, offline", add_help=False)
    sub.add_parser(
        "incident", help="describe a MinerIncident for a responder (incident describe NS/NAME)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "scan":
        from minerguard.scan import main as scan_main

        return int(scan_main(argv[1:]))
    if argv and argv[0] == "incident":
        from minerguard.incident_cli import main as incident_main

        return int(incident_main(argv[1:]))
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from minerguard.runner import run

        return int(run(args))
    return 2
