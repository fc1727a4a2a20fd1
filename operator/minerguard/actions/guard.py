"""Reads the nodes and asks the pure :mod:`minerguard.domain.guards` whether a node action may go ahead."""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from minerguard.config import GuardSettings
from minerguard.domain import guards
from minerguard.errors import Conflict, KubeError
from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)


def snapshot(node: Mapping[str, Any]) -> guards.NodeSnapshot:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    annotations = meta.get("annotations") or {}
    taints = tuple(
        str(t.get("key")) for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
    )
    acted_at = None
    raw = annotations.get(guards.ACTED_ANNOTATION)
    if raw:
        try:
            acted_at = datetime.datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
        except ValueError:
            acted_at = None
    held = bool(annotations.get(guards.CORDONED_ANNOTATION)) or guards.TAINT_KEY in taints
    return guards.NodeSnapshot(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        unschedulable=bool(spec.get("unschedulable")),
        no_schedule_taints=taints,
        held_by_us=held,
        acted_at=acted_at,
    )


class NodeGuard:
    """Serialises node actions across replicas and decides each against a fresh read of the nodes.

    ``lock_namespace`` (the operator's namespace) carries the shared lock; ``active`` is the peering gate,
    asked before every decision, so a replica that lost its turn mid-queue takes no node action.
    """

    def __init__(
        self,
        storage: KubeStorage,
        settings: GuardSettings,
        holder: str = "",
        lock_namespace: str = "",
        active: Callable[[], bool] | None = None,
        lock_wait: float = 10.0,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.holder = holder
        self.lock_namespace = lock_namespace
        self.active = active
        self.lock_wait = lock_wait
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[guards.GuardDecision | None]:
        """Hold the node-action lock (this process's, then every replica's); yields a refusal when it is busy."""
        with self.lock:
            if not self.lock_namespace:
                yield None
                return
            if not self._acquire():
                yield guards.GuardDecision(
                    False, "NodeActionLock", "another minerguard replica is taking a node action; retried next round"
                )
                return
            try:
                yield None
            finally:
                self._release()

    def _acquire(self) -> bool:
        deadline = time.monotonic() + self.lock_wait
        while True:
            meta = self.storage.get_namespace(self.lock_namespace).get("metadata") or {}
            current = (meta.get("annotations") or {}).get(guards.LOCK_ANNOTATION)
            if guards.lock_free_for(current, self.holder, time.time()):
                value = guards.lock_value(self.holder, time.time() + guards.LOCK_SECONDS)
                try:
                    self.storage.patch_namespace_annotations(
                        self.lock_namespace, {guards.LOCK_ANNOTATION: value}, str(meta.get("resourceVersion", ""))
                    )
                    return True
                except Conflict:
                    pass  # another replica took it first: look again
            if time.monotonic() >= deadline:
                return False
            threading.Event().wait(0.1)

    def _release(self) -> None:
        try:
            meta = self.storage.get_namespace(self.lock_namespace).get("metadata") or {}
            current = str((meta.get("annotations") or {}).get(guards.LOCK_ANNOTATION, ""))
            if current.rpartition(" ")[0] == self.holder:
                self.storage.patch_namespace_annotations(
                    self.lock_namespace, {guards.LOCK_ANNOTATION: None}, str(meta.get("resourceVersion", ""))
                )
        except KubeError as exc:  # it expires by itself
            log.info("Could not release the node-action lock: %s", exc)

    def check(self, node_name: str) -> guards.GuardDecision:
        if self.active is not None and not self.active():
            return guards.GuardDecision(
                False, "NotActive", "this replica is not the active one (peering); the active one decides"
            )
        nodes = [snapshot(n) for n in self.storage.list_nodes()]
        target = next((n for n in nodes if n.name == node_name), None)
        if target is None:
            return guards.GuardDecision(False, "NodeGone", f"Node {node_name} does not exist")
        return guards.decide(target, nodes, self.settings, time.time())
