"""``minerguard scan``: evaluate Kubernetes manifests against MinerPolicies, offline.

    minerguard scan --policies PATH [--policies PATH ...] [-o json|text] PATH...

Inputs are files, folders (searched recursively for ``*.yaml``, ``*.yml`` and ``*.json``)
or ``-`` for standard input; YAML files may hold several documents, and ``kind: List``
objects are opened. Every Pod and the pod template of every Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob and ReplicationController is evaluated against every
policy with the operator's own code (:func:`~minerguard.models.parse_policy`,
:func:`~minerguard.models.workloads_from_manifest`, :func:`~minerguard.detection.evaluate`).

Offline there is no Prometheus and no namespace: CPU signals cannot be evaluated (each
policy that has some is named in a note, and in ``notEvaluable`` in JSON), and a policy with
a ``namespaceSelector`` applies to nothing.

Exit status: 0 when nothing matched, 1 when something matched, 2 on bad input (invalid
YAML/JSON, non-UTF-8, a missing or unreadable path, a document that is not a mapping, an
invalid policy). Each problem is one line on standard error naming the file; a bad file does
not stop the others from being scanned, but the exit status is then 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from minerguard.detection import Verdict, evaluate
from minerguard.models import POLICY_KIND, Policy, PolicyInvalid, Workload, parse_policy, workloads_from_manifest

__all__ = ["main"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_LIST_DEPTH = 8
STDIN = "-"

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """Bad input: a file and what is wrong with it."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


@dataclass
class _Run:
    """What a scan collects: errors, and a cache of standard input (read at most once)."""

    errors: list[InputError] = field(default_factory=list)
    stdin: bytes | None = None

    def error(self, source: str, problem: str) -> None:
        self.errors.append(InputError(source, " ".join(problem.split())))


@dataclass(frozen=True)
class _Object:
    """One Kubernetes object read from a source, with its document number (from 1)."""

    source: str
    document: int
    body: Mapping[str, Any]


# ---------------------------------------------------------------------------------------
# Reading


def _files(path: str) -> list[str]:
    """The files a path stands for: itself, or the manifest files under a folder, sorted."""
    if path == STDIN or not os.path.isdir(path):
        return [path]
    found: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        found += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(MANIFEST_SUFFIXES)]
    return found


def _read_stdin(run: _Run) -> bytes:
    if run.stdin is None:
        stream = getattr(sys.stdin, "buffer", None)
        run.stdin = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
    return run.stdin


def _read(path: str, run: _Run) -> bytes:
    if path == STDIN:
        return _read_stdin(run)
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise InputError(path, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputError(path, "no such file or directory") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"invalid YAML: {exc.problem or exc.context or 'syntax error'}{where}"
    return f"invalid YAML: {exc}"


def _parse(path: str, text: str) -> list[Any]:
    if path.lower().endswith(".json"):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise InputError(path, f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except RecursionError:
            raise InputError(path, "invalid JSON: nested too deeply") from None
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise InputError(path, _yaml_problem(exc)) from None
    except RecursionError:
        raise InputError(path, "invalid YAML: nested too deeply") from None


def _expand(body: Any, source: str, document: int, run: _Run, depth: int = 0) -> Iterator[_Object]:
    """The object, or the items of a ``kind: List`` (or ``*List``) object."""
    if not isinstance(body, Mapping):
        what = f"document {document}" if depth == 0 else f"an item of the List in document {document}"
        run.error(source, f"{what} is not a mapping (got {_kind_of(body)})")
        return
    kind, items = body.get("kind"), body.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        if depth >= MAX_LIST_DEPTH:
            run.error(source, f"document {document}: Lists nested more than {MAX_LIST_DEPTH} deep")
            return
        for item in items:
            yield from _expand(item, source, document, run, depth + 1)
        return
    yield _Object(source=source, document=document, body=body)


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _objects(path: str, run: _Run) -> list[_Object] | None:
    """The objects of one file (or stdin), None if it cannot be read; problems are recorded, never raised."""
    try:
        documents = _parse(path, _decode(path, _read(path, run)))
    except InputError as exc:
        run.errors.append(exc)
        return None
    objects: list[_Object] = []
    for number, document in enumerate(documents, start=1):
        if document is not None:
            objects += _expand(document, path, number, run)
    return objects


# ---------------------------------------------------------------------------------------
# Policies


def _load_policies(paths: Sequence[str], run: _Run) -> list[Policy]:
    """The valid policies of every path, in order; a path without any MinerPolicy is an error."""
    policies: dict[str, tuple[Policy, str]] = {}
    for path in paths:
        found = [_policies_in(file, run, policies) for file in _files(path)]
        if not any(found) and None not in found:
            where = "in this folder" if os.path.isdir(path) else "in this file"
            run.error(path, f"no {POLICY_KIND} found {where}")
    return [policy for policy, _ in policies.values()]


def _policies_in(file: str, run: _Run, policies: dict[str, tuple[Policy, str]]) -> bool | None:
    """Parse the MinerPolicies of one file into ``policies``: whether it had any, None if unreadable."""
    objects = _objects(file, run)
    if objects is None:
        return None
    found = False
    for obj in objects:
        if obj.body.get("kind") != POLICY_KIND:
            continue
        found = True
        name = _name(obj.body) or f"(document {obj.document})"
        try:
            policy = parse_policy(obj.body)
        except PolicyInvalid as exc:
            run.error(file, f"policy {name}: {exc.reason}: {exc.message}")
            continue
        if policy.name in policies:
            run.error(file, f"policy {name}: defined twice (first in {policies[policy.name][1]})")
            continue
        policies[policy.name] = (policy, file)
    return found


def _name(body: Mapping[str, Any]) -> str:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else ""


# ---------------------------------------------------------------------------------------
# Scanning and output


def _result(obj: _Object, workload: Workload, verdict: Verdict) -> dict[str, Any]:
    return {
        "source": obj.source,
        "kind": workload.kind,
        "namespace": workload.namespace,
        "name": workload.name,
        "policy": verdict.policy,
        "mode": verdict.mode,
        "actions": list(verdict.actions),
        "evidence": [{"signal": e.signal, "container": e.container, "detail": e.detail} for e in verdict.evidence],
    }


def _scan(paths: Sequence[str], policies: Sequence[Policy], run: _Run) -> tuple[list[dict[str, Any]], int]:
    results: list[dict[str, Any]] = []
    workloads = 0
    for path in paths:
        for file in _files(path):
            for obj in _objects(file, run) or ():
                for workload in workloads_from_manifest(obj.body):
                    workloads += 1
                    for policy in policies:
                        verdict = evaluate(policy, workload, None)
                        if verdict.matched:
                            results.append(_result(obj, workload, verdict))
    return results, workloads


def _not_evaluable(policies: Sequence[Policy]) -> list[dict[str, Any]]:
    return [{"policy": p.name, "signals": list(p.metric_kinds)} for p in policies if p.metric_kinds]


def _notes(policies: Sequence[Policy]) -> list[str]:
    notes = [
        f"policy {p.name}: {', '.join(p.metric_kinds)} not evaluable offline (needs Prometheus)"
        for p in policies
        if p.metric_kinds
    ]
    notes += [
        f"policy {p.name}: has a namespaceSelector; namespace labels are unknown offline, so it applies to nothing"
        for p in policies
        if p.scope.namespace_selector is not None and not p.scope.namespace_selector.is_empty
    ]
    return notes


def _write_text(out: TextIO, results: Sequence[Mapping[str, Any]], policies: Sequence[Policy], workloads: int) -> None:
    for r in results:
        actions = f"actions: {', '.join(r['actions'])}" if r["actions"] else "report only"
        print(
            f"{r['source']}: {r['kind']} {r['namespace']}/{r['name']} matches {r['policy']} ({r['mode']}, {actions})",
            file=out,
        )
        for e in r["evidence"]:
            print(f"    {e['signal']} in container {e['container']}: {e['detail']}", file=out)
    for note in _notes(policies):
        print(f"note: {note}", file=out)
    matches = f"{len(results)} match" + ("" if len(results) == 1 else "es")
    print(f"{matches} ({workloads} workloads, {len(policies)} policies)", file=out)


def _write_json(out: TextIO, results: Sequence[Mapping[str, Any]], policies: Sequence[Policy]) -> None:
    document = {"results": list(results), "notEvaluable": _not_evaluable(policies), "notes": _notes(policies)}
    json.dump(document, out, indent=2)
    out.write("\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minerguard scan",
        description="Evaluate Kubernetes manifests against MinerPolicies, offline. "
        "Exit status: 0 no match, 1 a match, 2 bad input.",
    )
    parser.add_argument(
        "--policies",
        action="append",
        required=True,
        metavar="PATH",
        help="MinerPolicy file or folder (repeatable)",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format (default text)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="manifest file or folder, or - for standard input")
    return parser


def main(argv: list[str]) -> int:
    """Run ``minerguard scan`` with ``argv`` (the arguments after ``scan``); the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    run = _Run()
    policies = _load_policies(args.policies, run)
    results: list[dict[str, Any]] = []
    workloads = 0
    if policies:
        results, workloads = _scan(args.paths, policies, run)
    if args.output == "json":
        _write_json(sys.stdout, results, policies)
    else:
        _write_text(sys.stdout, results, policies, workloads)
    for error in run.errors:
        print(f"minerguard scan: {error}", file=sys.stderr)
    if run.errors:
        return 2
    return 1 if results else 0
