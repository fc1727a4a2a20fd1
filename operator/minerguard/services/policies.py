"""The policy registry: parses MinerPolicies as they come and go, and reports on them.

A valid policy becomes Ready and is used; an invalid one is marked Invalid (status
condition and a Warning Event) and ignored, without touching the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from minerguard import observability
from minerguard.domain.policy import Policy, PolicyInvalid, parse_policy
from minerguard.errors import KubeError, NotFound
from minerguard.services.events import Events
from minerguard.storage.kubernetes import KubeStorage, now_iso

log = logging.getLogger(__name__)


def condition(ctype: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message[:1024],
        "observedGeneration": generation,
        "lastTransitionTime": now_iso(),
    }


def merge_conditions(existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New conditions replace those of the same type; lastTransitionTime stays when the status did not change."""
    by_type = {c.get("type"): dict(c) for c in existing}
    for c in new:
        old = by_type.get(c["type"])
        if old and old.get("status") == c["status"]:
            c = {**c, "lastTransitionTime": old.get("lastTransitionTime", c["lastTransitionTime"])}
        by_type[c["type"]] = c
    return [by_type[k] for k in sorted(by_type, key=str)]


class PolicyRegistry:
    def __init__(self, storage: KubeStorage, events: Events) -> None:
        self.storage = storage
        self.events = events
        self._ready: dict[str, Policy] = {}
        self._snapshot: tuple[Policy, ...] = ()  # sorted by name; rebuilt on change, read on every pod event
        self._version = 0  # bumped whenever the snapshot changes: part of every pod's detection-input digest
        self._invalid: dict[str, str] = {}
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def last_counts(self, name: str) -> tuple[int, int] | None:
        with self._lock:
            return self._counts.get(name)

    def set_counts(self, name: str, counts: tuple[int, int]) -> None:
        with self._lock:
            self._counts[name] = counts

    def ready(self) -> tuple[Policy, ...]:
        return self._snapshot

    def version(self) -> int:
        """A number that changes whenever the set of ready policies does (pods' detection inputs include it)."""
        return self._version

    def get(self, name: str) -> Policy | None:
        with self._lock:
            return self._ready.get(name)

    def _gauge(self) -> None:
        """After every change (under the lock): the sorted snapshot and the policy gauges."""
        snapshot = tuple(self._ready[k] for k in sorted(self._ready))
        if snapshot != self._snapshot:
            self._snapshot = snapshot
            self._version += 1
        observability.POLICIES.labels("Ready").set(len(self._ready))
        observability.POLICIES.labels("Invalid").set(len(self._invalid))

    def observe(self, body: Mapping[str, Any]) -> tuple[Policy | None, bool]:
        """Take in a policy as seen in a watch event. Returns (the ready policy or None, whether it changed)."""
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        generation = int(meta.get("generation") or 0)
        status = body.get("status") or {}
        try:
            policy = parse_policy(body)
        except PolicyInvalid as exc:
            with self._lock:
                self._ready.pop(name, None)
                self._counts.pop(name, None)
                first = self._invalid.get(name) != exc.message
                self._invalid[name] = exc.message
                self._gauge()
            if first or status.get("observedGeneration") != generation:
                self._report_invalid(body, exc)
            return None, True
        with self._lock:
            previous = self._ready.get(name)
            self._ready[name] = policy
            was_invalid = self._invalid.pop(name, None) is not None
            if was_invalid:
                self._counts.pop(name, None)
            self._gauge()
        if status.get("observedGeneration") != generation or was_invalid or not _is_ready(status):
            self._report_ready(body, policy)
        return policy, previous != policy

    def forget(self, name: str) -> None:
        with self._lock:
            self._counts.pop(name, None)
            self._ready.pop(name, None)
            self._invalid.pop(name, None)
            self._gauge()

    def _report_invalid(self, body: Mapping[str, Any], exc: PolicyInvalid) -> None:
        meta = body.get("metadata") or {}
        name, generation = meta.get("name", ""), int(meta.get("generation") or 0)
        log.warning("MinerPolicy %s is invalid: %s", name, exc, extra={"object": f"MinerPolicy {name}", "policy": name})
        conditions = merge_conditions(
            list((body.get("status") or {}).get("conditions") or []),
            [
                condition("Ready", "False", exc.reason, exc.message, generation),
                condition("Invalid", "True", exc.reason, exc.message, generation),
            ],
        )
        try:
            self.storage.patch_policy_status(
                name, {"observedGeneration": generation, "conditions": conditions, "matchedPods": 0, "containedPods": 0}
            )
            self.events.policy_invalid(str(name), str(meta.get("uid", "")), exc.message)
        except NotFound:
            pass
        except KubeError as err:
            log.warning("Could not report MinerPolicy %s as invalid: %s", name, err)

    def _report_ready(self, body: Mapping[str, Any], policy: Policy) -> None:
        meta = body.get("metadata") or {}
        conditions = merge_conditions(
            list((body.get("status") or {}).get("conditions") or []),
            [
                condition("Ready", "True", "Valid", f"{policy.mode} policy in force", policy.generation),
                condition("Invalid", "False", "Valid", "", policy.generation),
            ],
        )
        try:
            self.storage.patch_policy_status(
                str(meta.get("name")), {"observedGeneration": policy.generation, "conditions": conditions}
            )
        except KubeError as err:
            log.warning("Could not report MinerPolicy %s as ready: %s", policy.name, err)


def _is_ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
