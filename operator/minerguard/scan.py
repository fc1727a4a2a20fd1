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

Exit status: 0 when nothing matched, 1 when something matched, 2 on bad input. Each problem
is one line on standard error naming the file (and the document, counted from 1, or the
item of a List), and ``-o json`` lists them under ``errors`` as well; a bad file or
document does not stop the others from being scanned and reported, but the exit status
is then 2. Bad input is:

* a missing or unreadable path, a file over 64 MiB, bytes that are not UTF-8, invalid
  YAML or JSON (also a number or date YAML or JSON cannot represent), an empty manifest
  file (no documents);
* a document that is not a mapping, or has no ``kind``; a ``List`` whose ``items`` is
  not a list, or Lists nested more than 8 deep; more than 10000 objects in one file
  (YAML aliases can multiply them), the rest being ignored;
* a workload (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
  ReplicationController) with a wrong type where minerguard reads it: ``spec`` that is a
  list, ``containers`` that is a string, an ``env`` that is a number, no pod template...
  One line per document names the first such field and how many more there are. What
  can be read is still scanned, as the operator would;
* an object of another kind that has a pod template (a typo such as ``Deploymnet``, or a
  custom workload such as an Argo Rollout): minerguard cannot say how it runs its pods,
  so it is not scanned. Objects of other kinds (Service, ConfigMap, MinerPolicy...) are
  skipped and counted;
* an invalid MinerPolicy (named, with its document), or one defined twice; a policy path
  without any MinerPolicy.

Text output is made printable (control characters in names and values are escaped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import yaml

from minerguard.detection import Verdict, evaluate, printable, shorten
from minerguard.models import (
    MAX_ARGS,
    MAX_CONTAINERS,
    MAX_LABELS,
    POLICY_KIND,
    WORKLOAD_KINDS,
    Policy,
    PolicyInvalid,
    Workload,
    parse_policy,
    workloads_from_manifest,
)
from minerguard.selectors import show

__all__ = ["main"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_LIST_DEPTH = 8
MAX_OBJECTS = 10_000
"""Objects read from one file, List items included; the rest are ignored (and reported)."""
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
    """What a scan collects: errors, skipped objects, and standard input (read at most once)."""

    errors: list[InputError] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    stdin: bytes | None = None

    def error(self, source: str, problem: str) -> None:
        self.errors.append(InputError(source, shorten(" ".join(problem.split()), 500)))


@dataclass(frozen=True)
class _Object:
    """One Kubernetes object read from a source; ``where`` is ``document 2`` or ``item 3 of the List in document 2``."""

    source: str
    where: str
    body: Mapping[str, Any]


@dataclass
class _Budget:
    """How many more objects one file may yield, and the documents whose Lists were too deep."""

    left: int = MAX_OBJECTS
    exhausted: bool = False
    too_deep: set[str] = field(default_factory=set)


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
        except ValueError as exc:  # e.g. a number of more than 4300 digits
            raise InputError(path, f"invalid JSON: {exc}") from None
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise InputError(path, _yaml_problem(exc)) from None
    except RecursionError:
        raise InputError(path, "invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # a value YAML cannot build: 2001-02-30, !!float abc, 5000 digits
        raise InputError(path, f"invalid YAML: {exc}") from None


def _expand(body: Any, source: str, where: str, run: _Run, budget: _Budget, depth: int = 0) -> Iterator[_Object]:
    """The object, or the items of a ``kind: List`` (or ``*List``) object, within the budget."""
    if budget.left <= 0:
        budget.exhausted = True
        return
    budget.left -= 1
    if not isinstance(body, Mapping):
        run.error(source, f"{where} is not a mapping (got {_kind_of(body)})")
        return
    kind, items = body.get("kind"), body.get("items")
    if not (isinstance(kind, str) and kind.endswith("List") and "items" in body):
        yield _Object(source=source, where=where, body=body)
        return
    if not isinstance(items, list):
        run.error(source, f"{where}: the items of a {show(kind)} must be a list, got {_kind_of(items)}")
        return
    if depth >= MAX_LIST_DEPTH:
        document = where.rsplit(" in ", 1)[-1]
        if document not in budget.too_deep:
            budget.too_deep.add(document)
            run.error(source, f"{document}: Lists nested more than {MAX_LIST_DEPTH} deep")
        return
    for index, item in enumerate(items, start=1):
        inner = f"item {index} of the List in {where}" if depth == 0 else f"item {index} of {where}"
        yield from _expand(item, source, inner, run, budget, depth + 1)


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def _objects(path: str, run: _Run, manifests: bool = False) -> list[_Object] | None:
    """The objects of one file (or stdin), None if it cannot be read; problems are recorded, never raised.

    With ``manifests``, a file without any document is a problem too."""
    try:
        documents = _parse(path, _decode(path, _read(path, run)))
    except InputError as exc:
        run.error(exc.source, exc.problem)
        return None
    if manifests and all(document is None for document in documents):
        run.error(path, "empty: no YAML or JSON document")
        return []
    objects: list[_Object] = []
    budget = _Budget()
    for number, document in enumerate(documents, start=1):
        if document is not None:
            objects += _expand(document, path, f"document {number}", run, budget)
        if budget.exhausted:
            run.error(path, f"more than {MAX_OBJECTS} objects; the rest were not read")
            break
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
        name = f"policy {_name(obj.body)} ({obj.where})" if _name(obj.body) else f"the policy in {obj.where}"
        try:
            policy = parse_policy(obj.body)
        except PolicyInvalid as exc:
            run.error(file, f"{name}: {exc.reason}: {exc.message}")
            continue
        if policy.name in policies:
            run.error(file, f"{name}: defined twice (first in {policies[policy.name][1]})")
            continue
        policies[policy.name] = (policy, file)
    return found


def _name(body: Mapping[str, Any]) -> str:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return _plain(name) if isinstance(name, str) and name else ""


def _plain(text: str) -> str:
    """A name as messages show it: itself when short and printable, else quoted and abridged."""
    return text if len(text) <= 100 and text.isprintable() else show(text, 100)


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
            for obj in _objects(file, run, manifests=True) or ():
                for workload in _workloads(obj, run):
                    workloads += 1
                    for policy in policies:
                        verdict = evaluate(policy, workload, None)
                        if verdict.matched:
                            results.append(_result(obj, workload, verdict))
    return results, workloads


def _workloads(obj: _Object, run: _Run) -> list[Workload]:
    """The workloads of an object, recording its problems: no kind, wrong types, a pod template of an unknown kind."""
    body, where = obj.body, obj.where
    kind = body.get("kind")
    if not isinstance(kind, str) or not kind:
        run.error(obj.source, f"{where} is not a Kubernetes object: it has no kind")
        return []
    if kind in WORKLOAD_KINDS:
        problems = shape_problems(body)
        if problems:
            more = f" (and {_plural(len(problems) - 1, 'more problem')})" if len(problems) > 1 else ""
            run.error(obj.source, f"{where}: {kind} {_plain(_name(body) or '(no name)')}: {problems[0]}{more}")
        return workloads_from_manifest(body)
    if _has_pod_template(body):
        run.error(
            obj.source,
            f"{where}: kind {show(kind)} has a pod template but is not a kind minerguard scans"
            f" ({', '.join(WORKLOAD_KINDS)}): not scanned",
        )
    else:
        run.skipped.append({"source": obj.source, "document": where, "kind": kind})
    return []


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _has_pod_template(body: Mapping[str, Any]) -> bool:
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return False
    return (
        "containers" in spec
        or isinstance(spec.get("template"), Mapping)
        or isinstance(spec.get("jobTemplate"), Mapping)
    )


_TYPES: dict[type, str] = {str: "a string", bool: "true or false", list: "a list", Mapping: "a mapping"}


class _Shape:
    """Problems with the types of the fields minerguard reads, each with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, value: Any, expected: type, path: str, required: bool = False) -> bool:
        """Whether ``value`` is of the expected type; if not (or missing when required), a problem is recorded."""
        if value is None:
            if required:
                self.problems.append(f"{path} is missing")
            return False
        if isinstance(value, expected) and not (expected is list and isinstance(value, str)):
            return True
        self.problems.append(f"{path} must be {_TYPES[expected]}, got {_kind_of(value)}")
        return False

    def mapping(
        self, parent: Mapping[str, Any] | None, key: str, path: str, required: bool = False
    ) -> Mapping[str, Any] | None:
        """The mapping at ``parent[key]``; None when the parent is None, or the value is missing or not a mapping."""
        if parent is None:
            return None
        value = parent.get(key)
        ok = self.check(value, Mapping, f"{path}.{key}" if path else key, required)
        return value if ok and isinstance(value, Mapping) else None

    def items(self, parent: Mapping[str, Any], key: str, path: str, required: bool = False) -> list[Any]:
        """The items of a list field (at most the workload view's cap), [] when it is not a list."""
        value = parent.get(key)
        ok = self.check(value, list, f"{path}.{key}", required)
        return list(value[:MAX_ARGS]) if ok and isinstance(value, list) else []

    def strings(self, parent: Mapping[str, Any], key: str, path: str) -> None:
        for index, item in enumerate(self.items(parent, key, path)):
            self.check(item, str, f"{path}.{key}[{index}]", required=True)

    def container(self, raw: Any, path: str) -> None:
        if not self.check(raw, Mapping, path, required=True):
            return
        for key in ("name", "image"):
            self.check(raw.get(key), str, f"{path}.{key}")
        self.strings(raw, "command", path)
        self.strings(raw, "args", path)
        for index, entry in enumerate(self.items(raw, "env", path)):
            where = f"{path}.env[{index}]"
            if self.check(entry, Mapping, where, required=True):
                self.check(entry.get("name"), str, f"{where}.name", required=True)
                self.check(entry.get("value"), str, f"{where}.value")
                self.check(entry.get("valueFrom"), Mapping, f"{where}.valueFrom")
        for key in ("securityContext", "resources"):
            self.mapping(raw, key, path)

    def pod_spec(self, spec: Mapping[str, Any], path: str) -> None:
        for key in ("containers", "initContainers", "ephemeralContainers"):
            for index, raw in enumerate(self.items(spec, key, path, required=key == "containers")[:MAX_CONTAINERS]):
                self.container(raw, f"{path}.{key}[{index}]")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            self.check(spec.get(key), bool, f"{path}.{key}")
        self.check(spec.get("nodeName"), str, f"{path}.nodeName")
        for index, volume in enumerate(self.items(spec, "volumes", path)):
            self.check(volume, Mapping, f"{path}.volumes[{index}]", required=True)

    def metadata(self, parent: Mapping[str, Any] | None, path: str) -> None:
        metadata = self.mapping(parent, "metadata", path) or {}
        for key in ("name", "namespace"):
            self.check(metadata.get(key), str, f"{path + '.' if path else ''}metadata.{key}")
        labels = self.mapping(metadata, "labels", f"{path + '.' if path else ''}metadata") or {}
        for key, value in itertools.islice(labels.items(), MAX_LABELS):
            self.check(value, str, f"{path + '.' if path else ''}metadata.labels[{_plain(str(key))}]", required=True)


def shape_problems(body: Mapping[str, Any]) -> list[str]:
    """Wrong types (and missing parts) in the fields of a workload manifest that minerguard
    reads, each as ``path must be ..., got ...``; [] when all is well. Bounded by the
    workload view's caps: what is past them is never read, so it is not checked either."""
    shape = _Shape()
    kind = body.get("kind")
    shape.metadata(body, "")
    spec = shape.mapping(body, "spec", "", required=True)
    path = "spec"
    if kind == "CronJob":
        job = shape.mapping(spec, "jobTemplate", path, required=True)
        spec = shape.mapping(job, "spec", f"{path}.jobTemplate", required=True)
        path = "spec.jobTemplate.spec"
    if kind != "Pod":
        template = shape.mapping(spec, "template", path, required=True)
        shape.metadata(template, f"{path}.template")
        spec = shape.mapping(template, "spec", f"{path}.template", required=True)
        path = f"{path}.template.spec"
    if spec is not None:
        shape.pod_spec(spec, path)
    return shape.problems


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


def _write_text(
    out: TextIO, results: Sequence[Mapping[str, Any]], policies: Sequence[Policy], workloads: int, run: _Run
) -> None:
    for r in results:
        actions = f"actions: {', '.join(r['actions'])}" if r["actions"] else "report only"
        subject = f"{r['source']}: {r['kind']} {r['namespace']}/{r['name']}"
        print(printable(f"{subject} matches {r['policy']} ({r['mode']}, {actions})"), file=out)
        for e in r["evidence"]:
            print(printable(f"    {e['signal']} in container {e['container']}: {e['detail']}"), file=out)
    for note in _notes(policies):
        print(printable(f"note: {note}"), file=out)
    matches = f"{len(results)} match" + ("" if len(results) == 1 else "es")
    skipped = f", {_plural(len(run.skipped), 'other object')} skipped" if run.skipped else ""
    print(f"{matches} ({workloads} workloads{skipped}, {len(policies)} policies)", file=out)


def _write_json(out: TextIO, results: Sequence[Mapping[str, Any]], policies: Sequence[Policy], run: _Run) -> None:
    document = {
        "results": list(results),
        "notEvaluable": _not_evaluable(policies),
        "notes": _notes(policies),
        "skipped": run.skipped,
        "errors": [{"source": e.source, "problem": e.problem} for e in run.errors],
    }
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
        _write_json(sys.stdout, results, policies, run)
    else:
        _write_text(sys.stdout, results, policies, workloads, run)
    for error in run.errors:
        print(printable(f"minerguard scan: {error}"), file=sys.stderr)
    if run.errors:
        return 2
    return 1 if results else 0
