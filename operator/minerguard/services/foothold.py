"""Gathers an incident's foothold evidence (:mod:`minerguard.domain.foothold`) after containment.

Once per incident, after the cut (the actions have run), the worker asks for the pod's foothold: the
controllers above the pod are read (one get each, two for a Deployment's pod) and the pod's
ServiceAccount is checked against the fixed list of dangerous verbs, one SubjectAccessReview each. The
answers for a ServiceAccount are kept for :data:`REVIEW_TTL` seconds, so the next miner under the same
account costs no review. Nothing is written here: the record goes into the incident's status with the
rest of the containment pass, in the same write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from minerguard.domain import foothold as fh
from minerguard.errors import KubeError, NotFound
from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)

REVIEW_TTL = 300.0
"""Seconds a ServiceAccount's answers are reused (RBAC seldom changes between two miners)."""

Answers = list[tuple[fh.Access, bool | None]]


class Footholds:
    """Reads the owner chain and asks the access reviews of one pod; caches answers per ServiceAccount."""

    def __init__(self, storage: KubeStorage, clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.clock = clock
        self._answers: dict[tuple[str, str], tuple[float, Answers]] = {}
        self._lock = threading.Lock()

    def gather(self, pod: Mapping[str, Any], detected: str) -> dict[str, Any]:
        """The ``status.foothold`` record of ``pod`` (never raises: what cannot be read is left out)."""
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        owners = self.owners(namespace, pod)
        spec = pod.get("spec") or {}
        account = str(spec.get("serviceAccountName") or "default")
        return fh.build(pod, owners, self.reach(namespace, account), detected)

    def owners(self, namespace: str, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The pod's controllers, nearest first (ReplicaSet, Deployment), as far as they can be read."""
        chain: list[dict[str, Any]] = []
        current: Mapping[str, Any] = pod
        for _ in range(fh.MAX_CHAIN):
            ref = fh.controller_of(current)
            if ref is None:
                break
            kind, name = ref
            try:
                current = self.storage.get_owner(namespace, kind, name)
            except NotFound:
                chain.append({"kind": kind, "metadata": {"name": name}})  # named by its child, gone since
                break
            except KubeError as exc:
                log.info("Foothold: could not read %s %s/%s: %s", kind, namespace, name, exc)
                break
            chain.append({"kind": kind, **current})
        return chain

    def reach(self, namespace: str, account: str) -> Answers:
        """The dangerous-verb table of a ServiceAccount: True, False, or None when a review failed."""
        key = (namespace, account)
        now = self.clock()
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and now - cached[0] < REVIEW_TTL:
                return cached[1]
        user, groups = fh.service_account_user(namespace, account), fh.service_account_groups(namespace)
        answers: Answers = []
        for access in fh.DANGEROUS_ACCESS:
            try:
                answers.append((access, self.storage.review_access(user, groups, access.attributes(namespace))))
            except KubeError as exc:
                log.info("Foothold: review of %s for %s failed: %s", access.can, user, exc)
                answers.append((access, None))
        if all(allowed is not None for _, allowed in answers):
            with self._lock:
                if len(self._answers) > 1000:
                    self._answers.clear()
                self._answers[key] = (now, answers)
        return answers
