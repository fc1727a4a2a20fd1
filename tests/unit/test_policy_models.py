"""Unit tests for minerguard.domain.policy.parse_policy: the MinerPolicy contract, valid and invalid."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from minerguard.domain.policy import (
    ActionSpec,
    CpuSignals,
    MatchSpec,
    NodeCpuSpec,
    PodCpuSpec,
    PolicyInvalid,
    UnaccountedCpuSpec,
    parse_policy,
)

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32


def full_policy() -> dict[str, Any]:
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerPolicy",
        "metadata": {"name": "full", "generation": 3, "uid": "u-1"},
        "spec": {
            "mode": "Enforce",
            "description": "every field",
            "scope": {
                "namespaceSelector": {"matchLabels": {"team": "a"}},
                "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                "excludedNamespaces": ["kube-system", "minerguard-system"],
                "excludedPodSelector": {"matchLabels": {"bench": "true"}},
            },
            "signals": {
                "images": [{"glob": "*xmrig*"}, {"regex": "miner", "strength": "Weak", "note": "n"}],
                "imageDigests": [{"digest": DIGEST, "note": "report"}],
                "pools": {
                    "schemes": ["stratum+tcp", "stratum+ssl", "stratum+tcp"],
                    "hosts": [{"glob": "*.supportxmr.com"}],
                    "ports": [{"port": 3333}, {"port": 4444, "strength": "Strong", "note": "x"}],
                },
                "processes": [{"glob": "xmrig"}, {"glob": "minerd"}, {"regex": "^kdev"}],
                "arguments": [{"glob": "--donate-level*"}, {"regex": r"-a\s+rx/0", "strength": "Weak"}],
                "wallets": {"monero": True, "patterns": [{"regex": "0x[0-9a-f]{40}"}]},
                "cpu": {
                    "pod": {"threshold": 0.9},
                    "node": {"threshold": 1, "window": "10m", "strength": "Strong"},
                    "unaccounted": {"cores": 2, "window": "1h"},
                },
            },
            "match": {"weakSignalsRequired": 3, "requireSignals": ["podCpu", "process"]},
            "actions": [{"name": "quarantine"}, {"name": "cordon", "when": "HostAccess"}, {"name": "scaleOwner"}],
        },
    }


def test_full_policy_parses() -> None:
    policy = parse_policy(full_policy())
    assert (policy.name, policy.generation, policy.uid, policy.mode) == ("full", 3, "u-1", "Enforce")
    assert policy.enforce is True
    assert policy.description == "every field"
    assert policy.actions == (
        ActionSpec("quarantine", "Always"),
        ActionSpec("cordon", "HostAccess"),
        ActionSpec("scaleOwner", "Always"),
    )
    scope = policy.scope
    assert scope.excluded_namespaces == frozenset({"kube-system", "minerguard-system"})
    assert scope.namespace_selector is not None and scope.namespace_selector.matches({"team": "a"})
    assert scope.pod_selector is not None and not scope.pod_selector.matches({})
    assert scope.excluded_pod_selector is not None and scope.excluded_pod_selector.matches({"bench": "true"})
    signals = policy.signals
    assert [i.strength for i in signals.images] == ["Strong", "Weak"]
    assert signals.images[1].note == "n"
    assert signals.images[0].path == "spec.signals.images[0]"
    assert signals.image_digests[0].digest == DIGEST
    assert signals.pool_schemes == ("stratum+tcp", "stratum+ssl")  # de-duplicated, in order
    assert signals.pool_hosts[0].strength == "Strong"
    assert [(p.port, p.strength) for p in signals.pool_ports] == [(3333, "Weak"), (4444, "Strong")]
    assert [i.pattern.source for i in signals.processes] == ["xmrig", "minerd", "^kdev"]
    assert all(i.strength == "Strong" for i in signals.processes)
    assert [i.strength for i in signals.arguments] == ["Strong", "Weak"]
    assert signals.monero is True
    assert signals.wallet_patterns[0].strength == "Strong"
    assert policy.match == MatchSpec(weak_required=3, require=frozenset({"podCpu", "process"}))
    assert policy.cpu == CpuSignals(
        pod=PodCpuSpec(threshold=0.9, window="5m", relative_to="Limit", cores=1.0, strength="Weak"),
        node=NodeCpuSpec(threshold=1.0, window="10m", strength="Strong"),
        unaccounted=UnaccountedCpuSpec(cores=2.0, window="1h", strength="Weak"),
    )
    assert policy.metric_kinds == ("podCpu", "nodeCpu", "nodeUnaccountedCpu")


def test_minimal_audit_policy_has_defaults() -> None:
    policy = parse_policy(
        {"metadata": {"name": "m"}, "spec": {"mode": "Audit", "signals": {"processes": [{"glob": "x"}]}}}
    )
    assert policy.mode == "Audit" and policy.enforce is False
    assert policy.actions == ()
    assert policy.generation == 0 and policy.uid == ""
    assert policy.match == MatchSpec(weak_required=2, require=frozenset())
    assert policy.cpu is None and policy.metric_kinds == ()
    assert policy.scope.namespace_selector is None and policy.scope.excluded_pod_selector is None


def test_audit_policy_may_list_actions() -> None:
    raw = full_policy()
    raw["spec"]["mode"] = "Audit"
    assert len(parse_policy(raw).actions) == 3


def test_pod_cpu_options() -> None:
    raw = full_policy()
    raw["spec"]["signals"]["cpu"] = {"pod": {"threshold": 2, "relativeTo": "Cores", "cores": 0.5, "window": "30s"}}
    policy = parse_policy(raw)
    assert policy.cpu is not None
    assert policy.cpu.pod == PodCpuSpec(threshold=2.0, window="30s", relative_to="Cores", cores=0.5, strength="Weak")
    assert policy.metric_kinds == ("podCpu",)


def test_policy_is_frozen_and_hashable() -> None:
    policy = parse_policy(full_policy())
    assert hash(policy) == hash(parse_policy(full_policy()))
    assert policy == parse_policy(full_policy())
    with pytest.raises(AttributeError):
        policy.mode = "Audit"  # type: ignore[misc]


Mutation = Callable[[dict[str, Any]], None]


def setter(path: str, value: Any) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def deleter(path: str) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


INVALID: list[tuple[str, Mutation, str, str]] = [
    (
        "bad regex",
        setter("spec.signals.processes.2", {"regex": "(unclosed"}),
        "InvalidRegex",
        "spec.signals.processes[2].regex",
    ),
    (
        "lookbehind",
        setter("spec.signals.images.1", {"regex": "(?<=a)b"}),
        "InvalidRegex",
        "spec.signals.images[1].regex",
    ),
    (
        "bad host regex",
        setter("spec.signals.pools.hosts.0", {"regex": "a{2,1}"}),
        "InvalidRegex",
        "pools.hosts[0].regex",
    ),
    (
        "bad wallet regex",
        setter("spec.signals.wallets.patterns.0", {"regex": "["}),
        "InvalidRegex",
        "wallets.patterns[0]",
    ),
    ("bad argument regex", setter("spec.signals.arguments.1", {"regex": "*x"}), "InvalidRegex", "arguments[1].regex"),
    ("glob and regex", setter("spec.signals.processes.0", {"glob": "a", "regex": "b"}), "InvalidSpec", "exactly one"),
    ("neither glob nor regex", setter("spec.signals.processes.0", {"note": "x"}), "InvalidSpec", "exactly one"),
    ("empty glob", setter("spec.signals.processes.0", {"glob": ""}), "InvalidSpec", "at least 1 character"),
    ("long glob", setter("spec.signals.processes.0", {"glob": "x" * 513}), "InvalidSpec", "longer than 512"),
    ("glob not a string", setter("spec.signals.processes.0", {"glob": 5}), "InvalidSpec", "must be a string"),
    ("unknown pattern field", setter("spec.signals.processes.0", {"glob": "x", "weight": 1}), "InvalidSpec", "weight"),
    (
        "bad strength",
        setter("spec.signals.processes.0", {"glob": "x", "strength": "Medium"}),
        "InvalidSpec",
        "Strong, Weak",
    ),
    ("long note", setter("spec.signals.processes.0", {"glob": "x", "note": "n" * 513}), "InvalidSpec", "note"),
    ("bad mode", setter("spec.mode", "Block"), "InvalidSpec", "spec.mode"),
    ("lowercase mode", setter("spec.mode", "enforce"), "InvalidSpec", "spec.mode"),
    ("no mode", deleter("spec.mode"), "InvalidSpec", "spec.mode: is required"),
    ("no signals", deleter("spec.signals"), "InvalidSpec", "spec.signals: is required"),
    ("empty signals", setter("spec.signals", {}), "InvalidSpec", "at least one signal"),
    ("signals not a map", setter("spec.signals", ["x"]), "InvalidSpec", "spec.signals: must be an object"),
    ("unknown signal", setter("spec.signals.proccesses", []), "InvalidSpec", "spec.signals.proccesses: unknown field"),
    ("unknown spec field", setter("spec.dryRun", True), "InvalidSpec", "spec.dryRun: unknown field"),
    ("enforce without actions", deleter("spec.actions"), "InvalidSpec", "mode Enforce needs at least one action"),
    ("enforce with empty actions", setter("spec.actions", []), "InvalidSpec", "mode Enforce needs at least one action"),
    ("unknown action", setter("spec.actions.0", {"name": "delete"}), "UnknownAction", "spec.actions[0].name"),
    ("action without name", setter("spec.actions.0", {"when": "Always"}), "InvalidSpec", "spec.actions[0].name"),
    ("bad when", setter("spec.actions.1", {"name": "cordon", "when": "Sometimes"}), "InvalidSpec", "actions[1].when"),
    ("duplicate action", setter("spec.actions.2", {"name": "quarantine"}), "InvalidSpec", "duplicate action"),
    ("too many actions", setter("spec.actions", [{"name": "quarantine"}] * 9), "InvalidSpec", "maximum 8"),
    ("actions not a list", setter("spec.actions", {"name": "quarantine"}), "InvalidSpec", "must be a list"),
    (
        "uppercase digest",
        setter("spec.signals.imageDigests.0", {"digest": DIGEST.upper()}),
        "InvalidSpec",
        "64 lowercase",
    ),
    (
        "short digest",
        setter("spec.signals.imageDigests.0", {"digest": "sha256:abcd"}),
        "InvalidSpec",
        "imageDigests[0]",
    ),
    ("md5 digest", setter("spec.signals.imageDigests.0", {"digest": "md5:" + "a" * 32}), "InvalidSpec", "sha256"),
    ("no digest", setter("spec.signals.imageDigests.0", {"note": "x"}), "InvalidSpec", "digest: is required"),
    ("bad scheme", setter("spec.signals.pools.schemes.0", "Stratum+TCP"), "InvalidSpec", "schemes[0]"),
    ("scheme with colon", setter("spec.signals.pools.schemes.0", "stratum+tcp://"), "InvalidSpec", "schemes[0]"),
    ("port zero", setter("spec.signals.pools.ports.0", {"port": 0}), "InvalidSpec", "ports[0].port"),
    ("port too big", setter("spec.signals.pools.ports.0", {"port": 70000}), "InvalidSpec", "ports[0].port"),
    ("port as string", setter("spec.signals.pools.ports.0", {"port": "3333"}), "InvalidSpec", "must be an integer"),
    ("no port", setter("spec.signals.pools.ports.0", {"note": "x"}), "InvalidSpec", "port: is required"),
    ("monero not bool", setter("spec.signals.wallets.monero", "yes"), "InvalidSpec", "wallets.monero"),
    ("bad window", setter("spec.signals.cpu.pod", {"threshold": 0.9, "window": "5min"}), "InvalidSpec", "pod.window"),
    ("window days", setter("spec.signals.cpu.node", {"threshold": 0.9, "window": "1d"}), "InvalidSpec", "node.window"),
    ("window no digits", setter("spec.signals.cpu.unaccounted", {"cores": 1, "window": "m"}), "InvalidSpec", "window"),
    ("low threshold", setter("spec.signals.cpu.pod", {"threshold": 0.01}), "InvalidSpec", "pod.threshold"),
    ("high pod threshold", setter("spec.signals.cpu.pod", {"threshold": 11}), "InvalidSpec", "pod.threshold"),
    ("high node threshold", setter("spec.signals.cpu.node", {"threshold": 1.5}), "InvalidSpec", "node.threshold"),
    ("bool threshold", setter("spec.signals.cpu.pod", {"threshold": True}), "InvalidSpec", "must be a number"),
    ("no threshold", setter("spec.signals.cpu.pod", {"window": "5m"}), "InvalidSpec", "threshold: is required"),
    ("small pod cores", setter("spec.signals.cpu.pod", {"threshold": 1, "cores": 0}), "InvalidSpec", "pod.cores"),
    (
        "bad relativeTo",
        setter("spec.signals.cpu.pod", {"threshold": 1, "relativeTo": "Node"}),
        "InvalidSpec",
        "relativeTo",
    ),
    ("small unaccounted", setter("spec.signals.cpu.unaccounted", {"cores": 0.01}), "InvalidSpec", "unaccounted.cores"),
    ("no unaccounted cores", setter("spec.signals.cpu.unaccounted", {}), "InvalidSpec", "cores: is required"),
    ("weak required 1", setter("spec.match.weakSignalsRequired", 1), "InvalidSpec", "weakSignalsRequired"),
    ("weak required 11", setter("spec.match.weakSignalsRequired", 11), "InvalidSpec", "weakSignalsRequired"),
    ("weak required str", setter("spec.match.weakSignalsRequired", "2"), "InvalidSpec", "weakSignalsRequired"),
    ("unknown required kind", setter("spec.match.requireSignals", ["cpu"]), "InvalidSpec", "requireSignals[0]"),
    (
        "bad pod selector",
        setter("spec.scope.podSelector", {"matchExpressions": [{"key": "a", "operator": "Is"}]}),
        "InvalidSelector",
        "spec.scope.podSelector.matchExpressions[0]",
    ),
    (
        "In without values",
        setter("spec.scope.namespaceSelector", {"matchExpressions": [{"key": "a", "operator": "In"}]}),
        "InvalidSelector",
        "spec.scope.namespaceSelector",
    ),
    (
        "bad excluded selector",
        setter("spec.scope.excludedPodSelector", "app=x"),
        "InvalidSelector",
        "excludedPodSelector",
    ),
    (
        "excluded namespaces str",
        setter("spec.scope.excludedNamespaces", "kube-system"),
        "InvalidSpec",
        "must be a list",
    ),
    ("long namespace", setter("spec.scope.excludedNamespaces", ["n" * 64]), "InvalidSpec", "excludedNamespaces[0]"),
    ("unknown scope field", setter("spec.scope.namespaces", ["a"]), "InvalidSpec", "spec.scope.namespaces"),
    ("long description", setter("spec.description", "d" * 1025), "InvalidSpec", "spec.description"),
    ("too many processes", setter("spec.signals.processes", [{"glob": "x"}] * 513), "InvalidSpec", "maximum 512"),
    ("wrong kind", setter("kind", "Pod"), "InvalidSpec", "kind: must be MinerPolicy"),
    ("wrong version", setter("apiVersion", "minerguard.io/v2"), "InvalidSpec", "apiVersion"),
    ("no name", setter("metadata", {}), "InvalidSpec", "metadata.name: is required"),
    ("spec not a map", setter("spec", "x"), "InvalidSpec", "spec: must be an object"),
    ("no spec", deleter("spec"), "InvalidSpec", "spec: is required"),
    ("unknown top-level", setter("sepc", {}), "InvalidSpec", "object.sepc: unknown field"),
]


@pytest.mark.parametrize(("mutate", "reason", "fragment"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_policies_are_refused_with_reason_and_field(mutate: Mutation, reason: str, fragment: str) -> None:
    raw = copy.deepcopy(full_policy())
    mutate(raw)
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(raw)
    assert caught.value.reason == reason
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"{reason}: ")


def test_invalid_regex_message_names_the_pattern() -> None:
    raw = full_policy()
    raw["spec"]["signals"]["processes"][2] = {"regex": "(?<=x)miner"}
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(raw)
    assert "spec.signals.processes[2].regex" in caught.value.message
    assert "(?<=x)miner" in caught.value.message


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(["not", "a", "policy"])  # type: ignore[arg-type]
    assert caught.value.reason == "InvalidSpec"
