"""The vocabulary every part shares, kept once: signal kinds, strengths and modes.

Pure constants; the policy parser, detection, the CRD checks and the services all read
them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

SPEC_SIGNAL_KINDS = ("image", "imageDigest", "poolEndpoint", "poolHost", "poolPort", "process", "argument", "wallet")
METRIC_SIGNAL_KINDS = ("podCpu", "nodeCpu", "nodeUnaccountedCpu")
SIGNAL_KINDS = SPEC_SIGNAL_KINDS + METRIC_SIGNAL_KINDS
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
        "podCpu": WEAK,
        "nodeCpu": WEAK,
        "nodeUnaccountedCpu": WEAK,
    }
)

ENFORCE = "Enforce"
AUDIT = "Audit"
MODES = (ENFORCE, AUDIT)
