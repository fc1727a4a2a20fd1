"""The vocabulary every part shares, kept once: signal kinds, strengths and modes.

Pure constants; the policy parser, detection, the CRD checks and the services all read
them from here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

SPEC_SIGNAL_KINDS = (
    "image",
    "imageDigest",
    "poolEndpoint",
    "poolHost",
    "poolPort",
    "process",
    "argument",
    "wallet",
    "encodedPayload",
    "oversizedValue",
)
"""Kinds found in the pod spec. The last two are always Weak: an encoded payload fed to a shell
that cannot be decoded (or is over the bounds), and a value or container text over the bounds
(read at its head and tail only)."""
METRIC_SIGNAL_KINDS = ("podCpu", "nodeCpu", "nodeUnaccountedCpu")
RUNTIME_SIGNAL_KINDS = ("runtime",)
"""Kinds reported by a runtime sensor (Falco events for a pod, see :mod:`minerguard.domain.runtime`)."""
SIGNAL_KINDS = SPEC_SIGNAL_KINDS + METRIC_SIGNAL_KINDS + RUNTIME_SIGNAL_KINDS
NODE_SIGNAL_KINDS = frozenset({"nodeCpu", "nodeUnaccountedCpu"})
"""Metric signal kinds measured for a node as a whole rather than for a pod."""

STRONG = "Strong"
WEAK = "Weak"
STRENGTHS = (STRONG, WEAK)
DEFAULT_STRENGTH: Mapping[str, str] = MappingProxyType(
    {
        "image": STRONG,
        "imageDigest": STRONG,
        "poolEndpoint": STRONG,
        "poolHost": STRONG,
        "poolPort": WEAK,
        "process": STRONG,
        "argument": STRONG,
        "wallet": STRONG,
        "encodedPayload": WEAK,
        "oversizedValue": WEAK,
        "podCpu": WEAK,
        "nodeCpu": WEAK,
        "nodeUnaccountedCpu": WEAK,
        "runtime": STRONG,
    }
)

ENFORCE = "Enforce"
AUDIT = "Audit"
MODES = (ENFORCE, AUDIT)


class ActionScope(enum.StrEnum):
    """What an action acts on: the matched pod, the node it runs on, or the workload that owns it."""

    POD = "Pod"
    NODE = "Node"
    OWNER = "Owner"


ACTION_SCOPES: Mapping[str, ActionScope] = MappingProxyType(
    {
        "quarantine": ActionScope.POD,
        "cordon": ActionScope.NODE,
        "taint": ActionScope.NODE,
        "scaleOwner": ActionScope.OWNER,
        "evict": ActionScope.POD,
    }
)
"""The actions a MinerPolicy may name, and their scopes: part of the MinerPolicy contract (the CRD
enum). The action registry (:mod:`minerguard.actions`) implements exactly these and checks so at
import; the domain cannot import the registry, so the names live here and the behaviour there."""
ACTION_NAMES = tuple(ACTION_SCOPES)
NODE_ACTIONS = frozenset(name for name, scope in ACTION_SCOPES.items() if scope is ActionScope.NODE)
