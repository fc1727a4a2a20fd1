"""The ``minerguard incident describe NS/NAME`` command line: a responder's one-screen summary of an incident.

Reads the MinerIncident and the Events minerguard emitted in its namespace (and in ``default``, for
nodes) with the caller's own credentials (KUBECONFIG or in-cluster) and prints
:func:`minerguard.domain.describe.describe`; Events that cannot be read are said so, not fatal.
Exit status: 0 printed, 1 incident not found or not readable, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any

from minerguard.domain.describe import describe
from minerguard.domain.eventlines import event_namespaces
from minerguard.errors import KubeError
from minerguard.storage.events import EventReader
from minerguard.storage.kubernetes import KubeStorage, load_api_client


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minerguard incident", description="Work with MinerIncidents.")
    sub = parser.add_subparsers(dest="verb", required=True)
    show = sub.add_parser(
        "describe",
        help="what matched, what was done, foothold, reach, related workloads, cost and next steps",
    )
    show.add_argument("incident", metavar="NS/NAME", help="the incident, e.g. tenant/deployment-miner")
    show.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    return parser


def main(argv: list[str]) -> int:
    """Run ``minerguard incident`` with ``argv`` (the arguments after ``incident``); the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    namespace, sep, name = str(args.incident).partition("/")
    if not sep or not namespace or not name:
        print("minerguard incident describe: give the incident as NAMESPACE/NAME", file=sys.stderr)
        return 2
    storage = KubeStorage(load_api_client(args.kubeconfig), instance="minerguard-cli")
    try:
        incident = storage.get_incident(namespace, name)
    except KubeError as exc:
        print(f"minerguard incident describe: {exc}", file=sys.stderr)
        return 1
    events: list[dict[str, Any]] | None = None
    unread = ""
    reader = EventReader(storage)
    try:
        events = [e for where in event_namespaces(incident) for e in reader.list_operator_events(where)]
    except KubeError as exc:  # the incident is worth printing without its Events
        unread = str(exc)
    sys.stdout.write(describe(incident, events, datetime.datetime.now(datetime.UTC), unread))
    return 0
