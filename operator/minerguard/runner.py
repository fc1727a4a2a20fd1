"""``minerguard run``: configure logging and metrics, build the app, and hand over to kopf."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import random
import uuid
from typing import Any, cast

import kopf
from prometheus_client import start_http_server
from pythonjsonlogger import json as jsonlogger

from minerguard import (
    __version__,
    handlers,  # noqa: F401 - registers the kopf handlers
    observability,
)
from minerguard.config import Settings
from minerguard.services.app import App


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object per line (python-json-logger, which kopf already depends on).

    time (ISO 8601 with the process' time zone and milliseconds), level, logger and message, and
    the fields a log call adds with ``extra=`` (object, policy, incident, ...), empty ones left out.
    """

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "exc_info": "exception"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in log_data.items() if v not in (None, "") or k == "message"}


def configure_logging(settings: Settings, verbose: bool) -> None:
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else settings.log_level.upper())
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if not verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)


class EventsOnlyDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base for an operator of event handlers only: nothing is built, read or stored.

    On every event of every watched object kopf builds the object's "essence" (a deep copy of the body
    without its system fields, then a second deep copy to clear progress marks) and reads the last
    handled one from an annotation, to find changes for on.create/update/field handlers. minerguard
    registers none (only ``@kopf.on.event``: ``tests/unit/test_runner.py`` fails if one appears), so
    the essence bought nothing, and it was half of the event loop's time while a tenant created
    megabyte pods (profiled: 756 of 1,580 samples), and a body's worth of copying for every pod event
    of a burst.
    """

    def build(self, *, body: Any, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: Any) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    """kopf's settings: no Events or state of kopf's own on anyone's objects, quick reconnects, peering."""
    ks = kopf.OperatorSettings()
    ks.posting.enabled = False
    ks.persistence.finalizer = "minerguard.io/finalizer"
    ks.persistence.diffbase_storage = EventsOnlyDiffBase()
    ks.watching.server_timeout = 300
    ks.watching.client_timeout = 330
    ks.watching.connect_timeout = 10
    ks.watching.reconnect_backoff = 1.0
    ks.networking.request_timeout = 30
    # One short-lived worker per object, unbounded: a limit here queues a new miner's event behind
    # every idle worker of the last burst of pods (each lingers idle_timeout seconds). Each idle
    # worker keeps its object's last body, so a start on 10,000 pods held them all at once with
    # kopf's 5 s: 0.5 s and the initial listing in pages of 500 (kopf's default: one response)
    # took the peak from 421 to 158 MiB (docs/performance.md, finding 3).
    ks.queueing.worker_limit = None
    ks.queueing.idle_timeout = 0.5
    ks.watching.chunk_size = 500
    ks.peering.lifetime = settings.peering_lifetime
    ks.peering.priority = settings.priority
    return ks


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.namespace:
        settings = Settings(**{**settings.__dict__, "namespace": args.namespace})
    if args.standalone:
        settings = Settings(**{**settings.__dict__, "peering": ""})
    elif args.peering:
        settings = Settings(**{**settings.__dict__, "peering": args.peering})
    if settings.peering and not settings.priority:
        # Replicas must not share a priority (kopf pauses all of them then): pick one at random.
        settings = Settings(**{**settings.__dict__, "priority": random.randint(1, 1_000_000)})
    configure_logging(settings, args.verbose)
    observability.announce_build(__version__)
    identity = f"{settings.instance}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    app = App.build(settings, identity, kubeconfig=os.environ.get("KUBECONFIG"))
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_address)
    logging.getLogger("minerguard").info(
        "Starting minerguard (identity %s, %s)",
        identity,
        f"peering {settings.peering}" if settings.peering else "standalone",
    )
    kopf.run(
        clusterwide=True,
        standalone=not settings.peering,
        peering_name=settings.peering or None,
        priority=settings.priority,
        settings=kopf_settings(settings),
        # The ActivityGate looks for this identity in the peering object. kopf types it as its Identity,
        # a NewType of str that it does not export: the str is what it is.
        identity=cast(Any, identity),
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(app=app),
    )
    return 0
