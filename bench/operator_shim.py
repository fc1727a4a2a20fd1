"""What-if runs only: ``minerguard run`` with kopf's per-object queueing settings replaced.

kopf keeps one worker per object that had an event and lets it idle for ``idle_timeout``
before it exits; ``worker_limit`` caps how many exist. Until commit c5a48d7 the operator set
64 and 30 s, which stalled it under load (docs/performance.md); it now uses kopf's defaults
(no limit, 5 s). This shim registers one more startup handler, which kopf runs after the
operator's own (in registration order), and sets the values given here, so the benchmark can
show what other values would do without touching the operator's code. The default benchmark
never uses it.

    python bench/operator_shim.py --worker-limit 64 --idle-timeout 30 -- run --standalone ...
    python bench/operator_shim.py --chunk-size 500 -- run --standalone ...   (bench/startup.py's variants)
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import kopf

from minerguard import handlers  # noqa: F401 - registers the operator's handlers first
from minerguard.cli import main as minerguard_main


def run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker-limit", help="an integer, or 'none' for no limit (default: the operator's setting)")
    ap.add_argument("--idle-timeout", type=float, help="seconds (default: the operator's setting)")
    ap.add_argument("--chunk-size", help="the initial listing's page size, or 'none' (default: the operator's)")
    ap.add_argument("--initial-streaming", choices=["true", "false"], help="list by a watch")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then minerguard's own arguments")
    args = ap.parse_args(argv)

    def number(text: str) -> int | None:
        return None if text.lower() == "none" else int(text)

    @kopf.on.startup()
    async def override_queueing(settings: kopf.OperatorSettings, **_: Any) -> None:
        if args.worker_limit is not None:
            settings.queueing.worker_limit = number(args.worker_limit)
        if args.idle_timeout is not None:
            settings.queueing.idle_timeout = args.idle_timeout
        if args.chunk_size is not None:
            settings.watching.chunk_size = number(args.chunk_size)
        if args.initial_streaming is not None:
            settings.watching.initial_streaming = args.initial_streaming == "true"
        logging.getLogger("minerguard.bench").warning(
            "BENCH WHAT-IF: kopf worker_limit=%s idle_timeout=%ss chunk_size=%s initial_streaming=%s",
            settings.queueing.worker_limit,
            settings.queueing.idle_timeout,
            settings.watching.chunk_size,
            settings.watching.initial_streaming,
        )

    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return int(minerguard_main(rest))


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
