"""Hostile pods: very large specs stay within the caps and keep the miner in view, evidence
never carries Secrets and is shortened, and the work does not depend on how often it is done.

No timing is asserted here (see bench/eval_bench.py for figures): the tests check that the
caps hold and that detection still finds what it must.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard.domain.detection import MAX_EVIDENCE_PER_KIND, Evidence, evaluate, prepare, spec_findings, tokens
from minerguard.domain.patterns import MAX_VALUE_LEN
from minerguard.domain.policy import Policy, PolicyInvalid, parse_policy
from minerguard.domain.text import printable
from minerguard.domain.workload import (
    MAX_NAME_LEN,
    MAX_POD_TEXT,
    ContainerView,
    Workload,
    fair_shares,
    workload_from_pod,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACK = [
    parse_policy(doc)
    for path in sorted((ROOT / "manifests" / "policies").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
]
WALLET = "4" + ("AbCdEfGh" * 12)[:94]
MINER = {
    "name": "miner",
    "image": "alpine",
    "command": ["/tmp/xmrig"],
    "args": ["-o", "stratum+tcp://pool.example:3333"],
}


def policy(**signals: Any) -> Policy:
    return parse_policy(
        {"kind": "MinerPolicy", "metadata": {"name": "p"}, "spec": {"mode": "Audit", "signals": signals}}
    )


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "big", "namespace": "apps"},
        "spec": {"containers": list(containers), **spec},
    }


def text_size(container: ContainerView) -> int:
    items = container.command + container.args
    env = sum(len(name) + len(value) + 1 for name, value in container.env)
    return len(container.image) + sum(len(item) + 1 for item in items) + env


def pod_text(workload: Workload) -> int:
    return sum(text_size(c) for c in workload.containers)


def junk_env(megabytes: float, value_len: int = 1000) -> list[dict[str, str]]:
    count = int(megabytes * 1e6 / value_len)
    return [{"name": f"J{i}", "value": f"{i:08d}" + "x:1 " * ((value_len - 8) // 4)} for i in range(count)]


def matched_policies(workload: Workload) -> dict[str, tuple[Evidence, ...]]:
    verdicts = [evaluate(p, workload, {}) for p in PACK]
    return {v.policy: v.evidence for v in verdicts if v.matched}


# ------------------------------------------------------------------ fair shares of the pod's text budget


@pytest.mark.parametrize(
    ("demands", "budget", "shares"),
    [
        ([], 10, []),
        ([3, 4], 10, [3, 4]),
        ([100, 1], 10, [9, 1]),
        ([100, 100], 10, [5, 5]),
        ([100, 2, 100], 10, [4, 2, 4]),
        ([7, 7, 7], 20, [6, 6, 6]),
        ([0, 50], 10, [0, 10]),
    ],
)
def test_fair_shares(demands: list[int], budget: int, shares: list[int]) -> None:
    assert fair_shares(demands, budget) == shares


def test_a_5_mb_pod_keeps_1_mib_of_text_and_the_miner_in_its_first_container() -> None:
    first = dict(MINER, env=junk_env(1.5))
    body = pod(first, *({"name": f"c{i}", "image": "app", "env": junk_env(0.5)} for i in range(7)))
    workload = workload_from_pod(body)
    assert len(json.dumps(body)) > 4_000_000
    assert pod_text(workload) <= MAX_POD_TEXT
    assert workload.containers[0].command == ("/tmp/xmrig",)
    assert workload.containers[0].args == ("-o", "stratum+tcp://pool.example:3333")
    found = matched_policies(workload)
    assert {"miner-binaries-and-args", "mining-pools"} <= set(found)
    assert any(e.container == "miner" and e.signal == "process" for e in found["miner-binaries-and-args"])


def test_junk_in_other_containers_cannot_push_a_miner_container_out_of_view() -> None:
    junk = [{"name": f"junk{i}", "image": "app", "args": ["x" * 60000] * 10, "env": junk_env(0.5)} for i in range(8)]
    workload = workload_from_pod(pod(*junk, MINER))  # the miner comes last, after 8 MB of junk
    assert pod_text(workload) <= MAX_POD_TEXT
    miner = workload.containers[-1]
    assert (miner.name, miner.command, miner.args) == ("miner", ("/tmp/xmrig",), tuple(MINER["args"]))
    assert "miner-binaries-and-args" in matched_policies(workload)


def test_a_thousand_containers_each_keep_their_command_line() -> None:
    filler = "f" * 3000
    containers = [{"name": f"c{i}", "image": "app", "command": ["run"], "args": [filler]} for i in range(999)]
    workload = workload_from_pod(pod(*containers, MINER))
    assert len(workload.containers) == 1000
    assert pod_text(workload) <= MAX_POD_TEXT
    assert all(c.command == ("run",) for c in workload.containers[:-1])
    assert workload.containers[-1].command == ("/tmp/xmrig",)
    assert "miner-binaries-and-args" in matched_policies(workload)


def test_100k_args_and_deeply_nested_junk() -> None:
    nested: Any = "bottom"
    for _ in range(3000):
        nested = {"x": [nested, 1, None]}
    big = {
        "name": "big",
        "image": "app",
        "command": ["python"],
        "args": [f"a{i}" for i in range(100_000)],
        "junk": nested,
    }
    workload = workload_from_pod(pod(MINER, big, nested=nested, volumes=[nested, {"hostPath": nested}]))
    assert pod_text(workload) <= MAX_POD_TEXT
    assert len(workload.containers[1].args) == 10_000  # MAX_ARGS
    assert workload.host_path is True
    assert "miner-binaries-and-args" in matched_policies(workload)


def test_a_miner_hidden_after_the_budget_is_not_seen_but_evaluation_returns() -> None:
    # The documented trade-off: text past the budget of its container is never scanned.
    hidden = dict(MINER, args=["x" * 60000] * 20 + ["stratum+tcp://late.example:3333"])
    workload = workload_from_pod(pod(hidden))
    assert "stratum+tcp://late.example:3333" not in workload.containers[0].args
    assert workload.containers[0].command == ("/tmp/xmrig",)  # the command comes first and is kept


def test_names_and_values_are_cut() -> None:
    long_name = "n" * 10_000
    body = pod({"name": long_name, "image": "i" * 100_000, "env": [{"name": long_name, "value": "v" * 100_000}]})
    [container] = workload_from_pod(body).containers
    assert container.name == long_name[:MAX_NAME_LEN]
    assert len(container.image) == MAX_VALUE_LEN
    head, tail = MAX_VALUE_LEN // 2, MAX_VALUE_LEN - MAX_VALUE_LEN // 2 - 1
    assert container.env == ((long_name[:MAX_NAME_LEN], "v" * head + "\n" + "v" * tail),)
    assert container.oversized == ("env " + long_name[:MAX_NAME_LEN] + " value of 100000 characters",)


def test_an_indicator_after_padding_is_kept() -> None:
    """A value over the bound keeps its head and tail: padding cannot push the end out of view."""
    body = pod({"name": "c", "args": ["A" * 500_000 + " xmrig"], "env": [{"name": "E", "value": "x" * 90_000 + "END"}]})
    [container] = workload_from_pod(body).containers
    assert container.args[0].endswith(" xmrig") and len(container.args[0]) == MAX_VALUE_LEN
    assert container.env[0][1].endswith("END")
    assert len(container.oversized) == 2


def test_empty_items_count_against_the_budget() -> None:
    # 1.5 million empty strings cost as much as 1.5 MB of text: the view keeps at most 1 MiB of them.
    container = {"name": "c", "args": [""] * 10_000, "env": [{"name": "", "value": ""}] * 5000}
    workload = workload_from_pod(pod(*([container] * 100)))
    assert sum(len(c.args) + len(c.env) for c in workload.containers) <= MAX_POD_TEXT


# ------------------------------------------------------------------ evidence


def test_secret_references_are_never_read() -> None:
    env = [
        {"name": "WALLET", "valueFrom": {"secretKeyRef": {"name": WALLET, "key": WALLET}}},
        {"name": "POOL", "valueFrom": {"configMapKeyRef": {"name": "stratum+tcp://pool.example:3333", "key": "k"}}},
        {"name": "BOTH", "value": WALLET, "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    workload = workload_from_pod(pod({"name": "c", "image": "app", "env": env}))
    assert workload.containers[0].env == ()
    for p in PACK:
        verdict = evaluate(p, workload, {})
        assert verdict.evidence == () and not verdict.matched


def test_wallet_in_a_literal_env_value_is_found_and_shortened() -> None:
    workload = workload_from_pod(pod({"name": "c", "image": "app", "env": [{"name": "W", "value": WALLET}]}))
    [evidence] = spec_findings(policy(wallets={"monero": True}), workload)
    assert WALLET not in evidence.detail and WALLET not in evidence.value
    assert evidence.value == f"{WALLET[:8]}…{WALLET[-6:]}"


def test_long_matched_values_are_shortened_with_an_ellipsis() -> None:
    token = "--donate-level=" + "9" * 500
    url = "stratum+tcp://" + "a" * 300 + ".example:3333"
    workload = workload_from_pod(pod({"name": "c", "image": "app", "command": ["run", token, url]}))
    found = spec_findings(
        policy(arguments=[{"glob": "--donate-level=*"}], pools={"schemes": ["stratum+tcp"]}), workload
    )
    assert [e.signal for e in found] == ["poolEndpoint", "argument"]
    for evidence in found:
        assert len(evidence.detail) <= 200 and "…" in evidence.detail
        assert len(evidence.value) <= 200
    assert found[0].detail.startswith("pool URL stratum+tcp://aaa") and found[0].detail.endswith(
        ".example:3333 in command"
    )


def test_evidence_is_printable() -> None:
    sneaky = "/tmp/xmrig\x1b[2J\u202e\nrm -rf /"
    workload = workload_from_pod(pod({"name": "c\x07", "image": "app", "command": [sneaky]}))
    [evidence] = spec_findings(policy(processes=[{"glob": "xmrig*"}]), workload)
    assert evidence.container == "c\\x07"
    assert evidence.detail.isprintable() and "\\x1b[2J\\u202e\\x0arm -rf " in evidence.detail
    assert printable("plain text") == "plain text"


def test_evidence_per_kind_is_capped_without_changing_the_verdict() -> None:
    weak_then_strong = policy(
        arguments=[{"glob": "--weak*", "strength": "Weak"}, {"glob": "--strong*"}],
    )
    args = [f"--weak{i}" for i in range(500)] + ["--strong"]
    workload = workload_from_pod(pod({"name": "c", "image": "app", "command": ["run", *args]}))
    verdict = evaluate(weak_then_strong, workload, {})
    assert verdict.matched
    assert len(verdict.evidence) == MAX_EVIDENCE_PER_KIND + 1
    assert verdict.evidence[-1].detail == 'argument "--strong" in command'
    urls = [f"stratum+tcp://p{i}.example:1" for i in range(20_000)]
    many = workload_from_pod(pod({"name": "c", "image": "app", "command": ["run", *urls[:9000]], "args": urls[9000:]}))
    found = spec_findings(policy(pools={"schemes": ["stratum+tcp"]}), many)
    assert len(found) == MAX_EVIDENCE_PER_KIND


def test_the_same_verdict_from_a_fresh_copy_and_from_the_cache() -> None:
    body = pod(
        dict(MINER, env=junk_env(0.3)), {"name": "w", "image": "xmrig/xmrig", "env": [{"name": "W", "value": WALLET}]}
    )
    first = [evaluate(p, workload_from_pod(body), {}) for p in PACK]
    workload = workload_from_pod(copy.deepcopy(body))
    again = [evaluate(p, workload, {}) for p in PACK]
    cached = [evaluate(p, workload, {}) for p in PACK]
    assert first == again == cached
    assert [e.detail for v in first for e in v.evidence] == [e.detail for v in cached for e in v.evidence]


# ------------------------------------------------------------------ values only Python callers (not JSON) can give

HUGE_INT = 10**5000  # more digits than Python converts to text by default


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mode": HUGE_INT}, "spec.mode: must be one of Enforce, Audit, got <int>"),
        ({"mode": "x" * 1_000_000}, "spec.mode: must be one of Enforce, Audit, got 'xxx"),
        ({"mode": "Audit", "x" * 100_000: 1}, "spec.'xxx"),
        ({"mode": "Audit", HUGE_INT: 1}, "spec.<int>: unknown field"),
        (
            {"mode": "Audit", "signals": {"cpu": {"unaccounted": {"cores": HUGE_INT}}}},
            "must be a finite number, got <int>",
        ),
        ({"mode": "Audit", "signals": {"cpu": {"unaccounted": {"cores": 10**400}}}}, "must be a finite number"),
        ({"mode": "Audit", "signals": {"cpu": {"pod": {"threshold": float("nan")}}}}, "must be a finite number"),
        ({"mode": "Audit", "signals": {"cpu": {"node": {"threshold": float("-inf")}}}}, "must be a finite number"),
        ({"mode": "Audit", "signals": {"x": 1}, "match": {"weakSignalsRequired": HUGE_INT}}, "spec.signals.x"),
        (
            {"mode": "Audit", "signals": {"processes": [{"glob": "x"}]}, "match": {"weakSignalsRequired": HUGE_INT}},
            "got <int>",
        ),
        (
            {"mode": "Audit", "signals": {"processes": [{"glob": "x"}]}, "scope": {"podSelector": {HUGE_INT: 1}}},
            "<int>",
        ),
        (
            {
                "mode": "Audit",
                "signals": {"processes": [{"glob": "x"}]},
                "scope": {"podSelector": {"matchLabels": {HUGE_INT: "x"}}},
            },
            "label key must be a non-empty string",
        ),
    ],
)
def test_pathological_policy_values_give_short_policy_invalid_messages(spec: dict[Any, Any], message: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy({"kind": "MinerPolicy", "metadata": {"name": "p"}, "spec": spec})
    assert message in str(caught.value)
    assert len(str(caught.value)) < 300


def test_pathological_pod_values_count_as_absent() -> None:
    body = pod(dict(MINER, resources={"limits": {"cpu": HUGE_INT}, "requests": {"cpu": 10**400}}), nodeName=HUGE_INT)
    workload = workload_from_pod(body)
    assert (workload.cpu_limit_cores, workload.cpu_request_cores, workload.node_name) == (None, None, "")
    assert "miner-binaries-and-args" in matched_policies(workload)


# ------------------------------------------------------------------ internals the guarantees rest on


def test_the_word_pre_check_splits_on_every_character_str_split_does() -> None:
    spaces = "".join(chr(code) for code in range(0x110000) if chr(code).isspace())
    assert set(spaces) == set(tokens._WHITESPACE)
    assert all(tokens._LINE_TABLE[ord(char)] == "\n" for char in spaces)


def test_a_preparation_serves_only_its_own_workload() -> None:
    miner = workload_from_pod(pod(MINER))
    other = workload_from_pod(pod(dict(MINER, name="plain", image="nginx:1.27", command=["nginx"], args=[])))
    found = spec_findings(PACK[3], miner)
    assert found
    assert spec_findings(PACK[3], miner, prepare(other)) == found  # another workload's preparation is not used
    assert spec_findings(PACK[3], miner, prepare(miner)) == found
