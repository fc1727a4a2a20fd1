"""Pure blast-radius decisions for node actions (cordon, taint): no API calls.

A false positive that cordons half a cluster is worse than a miner, so every node
action asks :func:`decide` first. The inputs are snapshots of the nodes as read
from the API, so the decision is the same after a restart: what minerguard did is
recorded on the nodes themselves (annotations with the time), not in memory.

Rules, in order (the first that holds back the action is reported):

1. a node matching the excluded-node selector (control-plane nodes by default) is never touched;
2. a node minerguard already acted on is fine (idempotent, nothing new);
3. at most ``min(max_nodes, max(1, floor(total * max_percent / 100)))`` nodes held by minerguard at once;
4. never leave fewer than ``min_schedulable_nodes`` schedulable worker nodes;
5. at most ``max_actions_per_hour`` new node actions in any hour.

The counts are only as good as the read they come from: two replicas deciding at once (a
handover) could each see room for one more node. So a decision and its action are taken under a
lock that every replica shares, the annotation :data:`LOCK_ANNOTATION` on the operator's
namespace, written with its resourceVersion (:func:`lock_free_for` says when it may be taken).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from minerguard.config import GuardSettings

ACTED_ANNOTATION = "minerguard.io/node-action-at"
# On the operator's own namespace: which replica is deciding and taking a node action, and until when.
LOCK_ANNOTATION = "minerguard.io/node-action-lock"
LOCK_SECONDS = 15.0
CORDONED_ANNOTATION = "minerguard.io/cordoned"
TAINT_KEY = "minerguard.io/suspect"


@dataclass(frozen=True)
class NodeSnapshot:
    name: str
    labels: Mapping[str, str]
    unschedulable: bool
    no_schedule_taints: tuple[str, ...]
    held_by_us: bool
    acted_at: float | None = None

    @property
    def schedulable(self) -> bool:
        return not self.unschedulable and not self.no_schedule_taints


@dataclass(frozen=True)
class GuardDecision:
    allowed: bool
    guard: str = ""
    reason: str = ""


def parse_node_selector(text: str) -> list[tuple[str, str | None]]:
    """'a,b=c' -> [('a', None), ('b', 'c')]: a key alone means 'has the label'."""
    out: list[tuple[str, str | None]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
            out.append((key.strip(), value.strip()))
        else:
            out.append((part, None))
    return out


def excluded(node: NodeSnapshot, selector: str) -> str | None:
    for key, value in parse_node_selector(selector):
        if key in node.labels and (value is None or node.labels[key] == value):
            return f"{key}={node.labels[key]}" if value is not None else key
    return None


def node_limit(total: int, settings: GuardSettings) -> int:
    return min(settings.max_nodes, max(1, math.floor(total * settings.max_percent / 100.0)))


def decide(node: NodeSnapshot, nodes: Sequence[NodeSnapshot], settings: GuardSettings, now: float) -> GuardDecision:
    """May minerguard take a node action (cordon or taint) on ``node`` now?"""
    label = excluded(node, settings.excluded_node_selector)
    if label:
        return GuardDecision(False, "ExcludedNode", f"Node {node.name} is excluded from node actions by label {label}")
    if node.held_by_us:
        return GuardDecision(True)
    workers = [n for n in nodes if not excluded(n, settings.excluded_node_selector)]
    held = [n for n in workers if n.held_by_us]
    limit = node_limit(len(workers), settings)
    if len(held) + 1 > limit:
        return GuardDecision(
            False,
            "MaxNodes",
            f"minerguard already holds {len(held)} of {len(workers)} nodes; the limit is {limit} "
            f"(maxNodes {settings.max_nodes}, maxPercent {settings.max_percent:g}%)",
        )
    schedulable_after = [n for n in workers if n.schedulable and n.name != node.name]
    if len(schedulable_after) < settings.min_schedulable_nodes:
        return GuardDecision(
            False,
            "MinSchedulable",
            f"acting on Node {node.name} would leave {len(schedulable_after)} schedulable nodes; "
            f"at least {settings.min_schedulable_nodes} must stay",
        )
    recent = [n for n in nodes if n.acted_at is not None and now - n.acted_at < 3600]
    if len(recent) >= settings.max_actions_per_hour:
        return GuardDecision(
            False,
            "RateLimit",
            f"{len(recent)} node actions in the last hour; the limit is {settings.max_actions_per_hour}",
        )
    return GuardDecision(True)


def lock_value(holder: str, until: float) -> str:
    return f"{holder} {until:.3f}"


def lock_free_for(value: str | None, holder: str, now: float) -> bool:
    """May ``holder`` take the node-action lock whose annotation reads ``value``? (Unreadable counts as free.)"""
    if not value:
        return True
    owner, _, until = value.rpartition(" ")
    try:
        expiry = float(until)
    except ValueError:
        return True
    return owner == holder or expiry <= now or expiry - now > 10 * LOCK_SECONDS
