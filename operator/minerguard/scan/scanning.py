"""Scanning: the policies loaded from files, every workload of every object evaluated against them.

The ConfigMaps among the scanned objects (from any of the files) are what the workloads'
ConfigMap references resolve to, as the operator resolves them from the cluster; a
ConfigMap that is not in the files is unknown, and Secrets are never read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from minerguard.domain.detection import Verdict, evaluate, prepare
from minerguard.domain.policy import POLICY_KIND, Policy, PolicyInvalid, parse_policy
from minerguard.domain.selectors import show
from minerguard.domain.text import plural
from minerguard.domain.workload import (
    WORKLOAD_KINDS,
    ConfigMapIndex,
    Workload,
    workloads_from_manifest,
)
from minerguard.scan.positions import Positions
from minerguard.scan.reading import Run, SourceObject, input_files, plain, read_objects
from minerguard.scan.shapes import has_pod_template, shape_problems


def load_policies(paths: Sequence[str], run: Run) -> list[Policy]:
    """The valid policies of every path, in order; a path without any MinerPolicy is an error."""
    policies: dict[str, tuple[Policy, str]] = {}
    for path in paths:
        found = [_policies_in(file, run, policies) for file in input_files(path)]
        if not any(found) and None not in found:
            where = "in this folder" if os.path.isdir(path) else "in this file"
            run.error(path, f"no {POLICY_KIND} found {where}")
    return [policy for policy, _ in policies.values()]


def _policies_in(file: str, run: Run, policies: dict[str, tuple[Policy, str]]) -> bool | None:
    """Parse the MinerPolicies of one file into ``policies``: whether it had any, None if unreadable."""
    objects = read_objects(file, run)
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
    return plain(name) if isinstance(name, str) and name else ""


# ---------------------------------------------------------------------------------------
# Scanning and output


def result(obj: SourceObject, workload: Workload, verdict: Verdict, positions: Positions) -> dict[str, Any]:
    evidence = []
    for e in verdict.evidence:
        found: dict[str, Any] = {
            "signal": e.signal,
            "strength": e.strength,
            "container": e.container,
            "detail": e.detail,
        }
        position = positions.of(obj, e.container, e.value or e.detail)
        if position is not None:
            found["line"], found["column"] = position
        evidence.append(found)
    return {
        "source": obj.source,
        "kind": workload.kind,
        "namespace": workload.namespace,
        "name": workload.name,
        "policy": verdict.policy,
        "mode": verdict.mode,
        "actions": list(verdict.actions),
        "evidence": evidence,
    }


def scan(
    paths: Sequence[str], policies: Sequence[Policy], run: Run, images: Callable[[Workload], Workload] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Every workload of the files evaluated against the policies (``images``: gives them their image configs)."""
    results: list[dict[str, Any]] = []
    workloads = 0
    positions = Positions(run)
    objects = [
        obj for path in paths for file in input_files(path) for obj in read_objects(file, run, manifests=True) or ()
    ]
    config_maps = ConfigMapIndex.from_objects(obj.body for obj in objects)
    for obj in objects:
        for workload in _workloads(obj, run, config_maps):
            workloads += 1
            if images is not None and any(p.signals.image_config for p in policies):
                workload = images(workload)
            prepared = prepare(workload)
            for policy in policies:
                verdict = evaluate(policy, workload, None, prepared=prepared)
                if verdict.matched:
                    results.append(result(obj, workload, verdict, positions))
    return results, workloads


def _workloads(obj: SourceObject, run: Run, config_maps: ConfigMapIndex) -> list[Workload]:
    """The workloads of an object, recording its problems: no kind, wrong types, a pod template of an unknown kind."""
    body, where = obj.body, obj.where
    kind = body.get("kind")
    if not isinstance(kind, str) or not kind:
        run.error(obj.source, f"{where} is not a Kubernetes object: it has no kind")
        return []
    if kind in WORKLOAD_KINDS:
        problems = shape_problems(body)
        if problems:
            more = f" (and {plural(len(problems) - 1, 'more problem')})" if len(problems) > 1 else ""
            run.error(obj.source, f"{where}: {kind} {plain(_name(body) or '(no name)')}: {problems[0]}{more}")
        return workloads_from_manifest(body, config_maps)
    if has_pod_template(body):
        run.error(
            obj.source,
            f"{where}: kind {show(kind)} has a pod template but is not a kind minerguard scans"
            f" ({', '.join(WORKLOAD_KINDS)}): not scanned",
        )
    else:
        run.skipped.append({"source": obj.source, "document": where, "kind": kind})
    return []
