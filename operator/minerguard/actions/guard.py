"""Reads the nodes and asks the pure :mod:`minerguard.domain.guards` whether a node action may go ahead."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Mapping
from typing import Any

from minerguard.config import GuardSettings
from minerguard.domain import guards
from minerguard.storage.kubernetes import KubeStorage


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
    """Serialises node actions in this process and decides each against a fresh read of the nodes."""

    def __init__(self, storage: KubeStorage, settings: GuardSettings) -> None:
        self.storage = storage
        self.settings = settings
        self.lock = threading.Lock()

    def check(self, node_name: str) -> guards.GuardDecision:
        nodes = [snapshot(n) for n in self.storage.list_nodes()]
        target = next((n for n in nodes if n.name == node_name), None)
        if target is None:
            return guards.GuardDecision(False, "NodeGone", f"Node {node_name} does not exist")
        return guards.decide(target, nodes, self.settings, time.time())
