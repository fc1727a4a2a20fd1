"""What a release covers: the workload's UID, its pod templates and the policies that matched.

A release is a person's judgement about one workload as it was: the object with that UID,
running that pod template, flagged by those policies. It is not immunity for a name: a
workload deleted and made again under the same name (a new UID), a ``kubectl set image`` to
another program (a new template) or a policy that did not match before is a new detection,
recorded in an incident of its own (:func:`candidate_names`).

An incident counts only when minerguard made it (:func:`operator_made`): its status, which
only the status subresource writes and only the operator is granted, carries ``firstSeen``
from minerguard's first record. A MinerIncident a tenant created (say with ``release: true``,
to make a future miner immune) is ignored and reported. Pure functions; no API calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from minerguard.domain import incidents as inc

Decision = Literal["use", "exempt", "next"]
"""What to do with an incident name for a matched pod: record in it, leave the pod alone, try the next name."""

_CONTAINER_FIELDS = ("name", "image", "command", "args", "env", "envFrom", "workingDir")


def template_hash(pod: Mapping[str, Any]) -> str:
    """A digest of what a pod runs: each (init) container's image, command, arguments and environment.

    Every pod made from one template of a Deployment, StatefulSet, DaemonSet or Job has the same
    digest; a new template, or an in-place image change of a pod, gives another one.
    """
    spec = pod.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    parts: list[Any] = []
    for key in ("initContainers", "containers"):
        items = spec.get(key)
        for c in items if isinstance(items, list) else []:
            if isinstance(c, Mapping):
                parts.append([key, {f: c.get(f) for f in _CONTAINER_FIELDS if c.get(f) is not None}])
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def operator_made(incident: Mapping[str, Any], workload_uid: str = "") -> bool:
    """Whether minerguard made this incident: its status has minerguard's first record.

    Between minerguard's create and its first status write (a crash in between, or a replica that
    created it a moment ago) the incident has no status yet: it is minerguard's if its spec is
    the one minerguard creates for this workload (not released, the workload's UID).
    """
    status = incident.get("status")
    if isinstance(status, Mapping) and status.get("firstSeen"):
        return True
    spec = incident.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    workload = spec.get("workload")
    uid = workload.get("uid") if isinstance(workload, Mapping) else None
    return bool(workload_uid) and not spec.get("release") and uid == workload_uid


def policies_of(incident: Mapping[str, Any]) -> list[str]:
    """Every policy the incident records as matching: its policy and those of its evidence."""
    spec = incident.get("spec") or {}
    evidence = (incident.get("status") or {}).get("evidence") or []
    names = {str(spec.get("policy") or "")} | {str(e.get("policy")) for e in evidence if e.get("policy")}
    return sorted(n for n in names if n)


def released_for(incident: Mapping[str, Any], templates: Iterable[str]) -> dict[str, Any]:
    """The binding a release records (``status.releasedFor``): the workload UID, the templates, the policies."""
    workload = (incident.get("spec") or {}).get("workload") or {}
    return {
        "uid": str(workload.get("uid") or ""),
        "templates": sorted(set(templates)),
        "policies": policies_of(incident),
    }


def decide(incident: Mapping[str, Any] | None, uid: str, template: str, policies: Sequence[str]) -> Decision:
    """What a matched pod (workload ``uid``, pod ``template``, matching ``policies``) does with this incident."""
    if incident is None:
        return "use"
    if not operator_made(incident, uid):
        return "next"  # a tenant's incident: ignored (and reported by the caller)
    spec, status = incident.get("spec") or {}, incident.get("status") or {}
    if not spec.get("release"):
        return "use"
    workload_uid = str((spec.get("workload") or {}).get("uid") or "")
    if status.get("state") != inc.RELEASED:
        # A release asked for and not carried out yet: leave this workload's pods to it.
        return "exempt" if workload_uid == uid else "next"
    binding = status.get("releasedFor")
    if not isinstance(binding, Mapping):
        # Released by a minerguard before release bindings: its UID and policies still bind it.
        binding = {"uid": workload_uid, "templates": [template], "policies": policies_of(incident)}
    templates = binding.get("templates") or []
    covered = (
        binding.get("uid") == uid
        # A release with no pod left to read (a Deployment scaleOwner took to 0) binds the UID and policies only.
        and (template in templates or not templates)
        and set(policies) <= set(binding.get("policies") or [])
    )
    return "exempt" if covered else "next"


def candidate_names(ref: inc.WorkloadRef, template: str, policy: str) -> list[str]:
    """The incident names a detection may be recorded in, in order: the workload's own name, then names for
    this UID, template and policy (taken when the first is released for something else or is not minerguard's)."""
    base = inc.incident_name(ref)
    key = hashlib.sha256(f"{ref.uid}\n{template}\n{policy}".encode()).hexdigest()
    short = base[:230].rstrip("-.")
    return [base, f"{short}-{key[:8]}", f"{short}-{key[8:16]}"]
