"""The ``minerguard scan`` command line: arguments, the run, the exit status."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from minerguard.config import RegistrySettings
from minerguard.domain.text import printable
from minerguard.scan.images import ImageInspector
from minerguard.scan.output import write_json, write_sarif, write_text
from minerguard.scan.reading import Run
from minerguard.scan.scanning import load_policies, scan


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minerguard scan",
        description="Evaluate Kubernetes manifests against MinerPolicies, offline. Exit status: 0 nothing to fail "
        "on, 1 a match that --fail-on counts (by default: of an Enforce policy), 2 bad input.",
    )
    parser.add_argument(
        "--policies",
        action="append",
        metavar="PATH",
        help="MinerPolicy file or folder (repeatable); without it, the default pack installed with minerguard",
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json", "sarif"), default="text", help="output format (default text)"
    )
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="enforce",
        help="which matches make the exit status 1: of Enforce policies (default), of any policy, or none",
    )
    parser.add_argument(
        "--inspect-images",
        action="store_true",
        help="read each image's config and history from its registry for policies with signals.imageConfig "
        "(off by default; an image that cannot be read is scanned on its spec, with a note)",
    )
    parser.add_argument(
        "--registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="with --inspect-images, read only these registries (repeatable; default: any on a public address)",
    )
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="with --inspect-images, read this registry over plain http (repeatable; also allows it)",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="manifest file or folder, or - for standard input")
    return parser


def main(argv: list[str]) -> int:
    """Run ``minerguard scan`` with ``argv`` (the arguments after ``scan``); the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    run = Run()
    policies = load_policies(args.policies or [default_pack()], run)
    results: list[dict[str, Any]] = []
    workloads = 0
    images = None
    if args.inspect_images:
        settings = RegistrySettings(True, tuple(args.registry), tuple(args.insecure_registry))
        images = ImageInspector(settings, lambda note: print(printable(f"minerguard scan: {note}"), file=sys.stderr))
    if policies:
        results, workloads = scan(args.paths, policies, run, images)
    if args.output == "json":
        write_json(sys.stdout, results, policies, run)
    elif args.output == "sarif":
        write_sarif(sys.stdout, results, policies, run)
    else:
        write_text(sys.stdout, results, policies, workloads, run)
    for error in run.errors:
        print(printable(f"minerguard scan: {error}"), file=sys.stderr)
    if run.errors:
        return 2
    return 1 if any(fails(r["mode"], args.fail_on) for r in results) else 0


FAIL_ON = ("enforce", "audit", "never")


def default_pack() -> str:
    """The folder of the default policy pack shipped in the package (``minerguard/pack``, package data)."""
    pack = resources.files("minerguard") / "pack"
    return str(pack) if isinstance(pack, Path) else "minerguard/pack"


def fails(mode: str, fail_on: str) -> bool:
    """Whether a match of a policy in ``mode`` fails the scan under ``--fail-on``."""
    return fail_on == "audit" or (fail_on == "enforce" and mode == "Enforce")
