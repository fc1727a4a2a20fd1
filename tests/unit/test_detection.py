"""Unit tests for minerguard.domain.detection: scope, each signal family, the match rule and actions."""

from __future__ import annotations

from typing import Any

import pytest

from minerguard.domain.detection import (
    Evidence,
    evaluate,
    evaluate_node,
    in_scope,
    shell_programs,
    spec_findings,
    words,
)
from minerguard.domain.policy import Policy, parse_policy
from minerguard.domain.text import shorten
from minerguard.domain.workload import Workload, workload_from_pod

pytestmark = pytest.mark.unit

WALLET = "4" + ("AbCdEfGh" * 12)[:94]
INTEGRATED = "4" + ("Zy" * 53)[:105]
SUBADDRESS = "8" + ("qRsT" * 24)[:94]


def policy(signals: dict[str, Any], **spec: Any) -> Policy:
    body: dict[str, Any] = {"mode": "Enforce", "actions": [{"name": "quarantine"}], "signals": signals}
    body.update(spec)
    return parse_policy({"metadata": {"name": "p"}, "spec": body})


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "busybox", **fields}


def pod(
    *containers: dict[str, Any], namespace: str = "apps", labels: dict[str, str] | None = None, **spec: Any
) -> Workload:
    return workload_from_pod(
        {
            "metadata": {"name": "x", "namespace": namespace, "labels": labels or {}},
            "spec": {"containers": list(containers), **spec},
        }
    )


def found(p: Policy, w: Workload) -> list[tuple[str, str, str]]:
    return [(e.signal, e.strength, e.value) for e in spec_findings(p, w)]


# ------------------------------------------------------------------ evidence and helpers


def test_shorten_keeps_head_and_tail() -> None:
    assert shorten("abc", 5) == "abc"
    text = "a" * 150 + "MIDDLE" + "z" * 150
    short = shorten(text)
    assert len(short) == 200
    assert short == "a" * 100 + "…" + "z" * 99
    assert shorten("abcdef", 1) == "…"


def test_evidence_dict_omits_empty_optionals_and_shortens_detail() -> None:
    e = Evidence(signal="process", strength="Strong", container="c", detail="d" * 500)
    assert len(e.detail) == 200
    assert e.to_dict() == {"signal": "process", "strength": "Strong", "container": "c", "detail": e.detail}
    m = Evidence(
        signal="podCpu", strength="Weak", container="", detail="cpu", query="rate(x[5m])", value="0.97", window="5m"
    )
    assert m.to_dict()["query"] == "rate(x[5m])" and m.to_dict()["window"] == "5m" and m.to_dict()["value"] == "0.97"


def test_words_split_on_shell_separators() -> None:
    assert words("a 'b c';d|e&f(g)h`i`<j>k{l}") == ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]
    assert words("--coin=monero,x") == ["--coin=monero,x"]


@pytest.mark.parametrize(
    ("script", "programs"),
    [
        ("xmrig -o x", ["xmrig"]),
        ("cd /tmp && ./xmrig --donate-level 1", ["cd", "xmrig"]),
        ("curl -s http://x/y | bash", ["curl", "bash"]),
        ("a; b || c & d", ["a", "b", "c", "d"]),
        ("nohup /opt/kinsing &", ["nohup", "kinsing"]),
        ("exec env FOO=1 timeout 10 miner", ["exec", "env", "timeout", "miner"]),
        ("X=1 Y=2 kdevtmpfsi", ["kdevtmpfsi"]),
        ("sh -c 'xmrig -o p'", ["sh", "xmrig"]),
        ("echo local stratum 10 > /etc/chrony.conf", ["echo"]),
        ("rm -f /tmp/xmrig.json; pkill -f xmrig", ["rm", "pkill"]),  # arguments, not programs
        ("(sleep 1; ./x)\n../y", ["sleep", "x", "y"]),
        ("", []),
    ],
)
def test_shell_programs(script: str, programs: list[str]) -> None:
    assert shell_programs(script) == programs


# ------------------------------------------------------------------ scope


def scoped(scope: dict[str, Any]) -> Policy:
    return policy({"processes": [{"glob": "xmrig"}]}, scope=scope)


MINER = container(command=["xmrig"])


def test_excluded_namespaces() -> None:
    p = scoped({"excludedNamespaces": ["kube-system"]})
    assert in_scope(p, pod(MINER, namespace="kube-system"), None) is False
    assert in_scope(p, pod(MINER, namespace="apps"), None) is True
    assert evaluate(p, pod(MINER, namespace="kube-system"), None).matched is False


def test_excluded_pod_selector() -> None:
    p = scoped({"excludedPodSelector": {"matchLabels": {"bench": "true"}}})
    assert in_scope(p, pod(MINER, labels={"bench": "true"}), {}) is False
    assert in_scope(p, pod(MINER, labels={"bench": "false"}), {}) is True
    assert in_scope(p, pod(MINER), {}) is True


def test_empty_excluded_pod_selector_excludes_everything() -> None:
    assert in_scope(scoped({"excludedPodSelector": {}}), pod(MINER), None) is False


def test_namespace_selector_needs_known_labels() -> None:
    p = scoped({"namespaceSelector": {"matchLabels": {"team": "a"}}})
    assert in_scope(p, pod(MINER), None) is False  # unknown labels: does not apply
    assert in_scope(p, pod(MINER), {"team": "a"}) is True
    assert in_scope(p, pod(MINER), {"team": "b"}) is False
    assert in_scope(scoped({"namespaceSelector": {}}), pod(MINER), None) is True


def test_pod_selector() -> None:
    p = scoped({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}})
    assert in_scope(p, pod(MINER, labels={"app": "web"}), None) is True
    assert in_scope(p, pod(MINER, labels={"app": "db"}), None) is False
    verdict = evaluate(p, pod(MINER, labels={"app": "db"}), None)
    assert (verdict.matched, verdict.evidence, verdict.reason) == (False, (), "not in scope")


# ------------------------------------------------------------------ images and digests


def test_image_patterns_match_full_reference_or_last_segment() -> None:
    p = policy({"images": [{"glob": "*xmrig*"}, {"glob": "miner:*"}, {"regex": "^evil/"}]})
    assert found(p, pod(container(image="docker.io/someone/xmrig:latest"))) == [
        ("image", "Strong", "docker.io/someone/xmrig:latest")
    ]
    assert found(p, pod(container(image="registry.example/team/miner:1.0")))[0][0] == "image"
    assert found(p, pod(container(image="evil/thing"))) == [("image", "Strong", "evil/thing")]
    assert found(p, pod(container(image="docker.io/evil/thing"))) == []
    assert found(p, pod(container(image="nginx:1.27"))) == []


def test_image_digest_in_reference_and_image_id() -> None:
    digest = "sha256:" + "ab" * 32
    p = policy({"imageDigests": [{"digest": digest}]})
    by_ref = pod(container(image=f"docker.io/x/y@{digest}"))
    assert found(p, by_ref) == [("imageDigest", "Strong", digest)]
    retagged = workload_from_pod(
        {
            "spec": {"containers": [{"name": "c", "image": "innocent:latest"}]},
            "status": {"containerStatuses": [{"name": "c", "imageID": f"docker-pullable://x/y@{digest.upper()}"}]},
        }
    )
    assert found(p, retagged) == [("imageDigest", "Strong", digest)]
    assert found(p, pod(container(image="x/y@sha256:" + "cd" * 32))) == []


# ------------------------------------------------------------------ pools

POOLS = {
    "pools": {
        "schemes": ["stratum+tcp", "stratum+ssl"],
        "hosts": [{"glob": "*.supportxmr.com"}, {"regex": r"(^|\.)nanopool\.org$", "strength": "Weak"}],
        "ports": [{"port": 3333}, {"port": 4444}, {"port": 14444}],
    }
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"args": ["-o", "stratum+tcp://pool.example:3333"]},
            [("poolEndpoint", "Strong", "stratum+tcp://pool.example:3333"), ("poolPort", "Weak", "3333")],
        ),
        (
            {"args": ["--url=stratum+ssl://user:pw@pool.example:443"]},
            [("poolEndpoint", "Strong", "stratum+ssl://user:pw@pool.example:443")],
        ),
        (
            {"args": ["-o", "pool.supportxmr.com:3333"]},
            [("poolHost", "Strong", "pool.supportxmr.com"), ("poolPort", "Weak", "3333")],
        ),
        (
            {"env": [{"name": "POOL", "value": "xmr-eu1.nanopool.org:14444"}]},
            [("poolHost", "Weak", "xmr-eu1.nanopool.org"), ("poolPort", "Weak", "14444")],
        ),
        (
            {"env": [{"name": "CFG", "value": '{"url":"STRATUM+TCP://Pool.SupportXMR.com:5555"}'}]},
            [
                ("poolEndpoint", "Strong", "STRATUM+TCP://Pool.SupportXMR.com:5555"),
                ("poolHost", "Strong", "pool.supportxmr.com"),
            ],
        ),
        (
            {"args": ["-o", "a.example:3333,b.example:4444"]},
            [("poolPort", "Weak", "3333"), ("poolPort", "Weak", "4444")],
        ),
        ({"args": ["--pool", "tcp://10.0.0.5:3333"]}, [("poolPort", "Weak", "3333")]),
        ({"args": ["https://supportxmr.com/api"]}, []),  # apex is not *.supportxmr.com
        ({"args": ["https://www.supportxmr.com/api"]}, []),  # a pool's web API is not pool usage
        ({"args": ["--url", "https://www.supportxmr.com/api"]}, [("poolHost", "Strong", "www.supportxmr.com")]),
        ({"args": ["--server", "xmr.supportxmr.com"]}, [("poolHost", "Strong", "xmr.supportxmr.com")]),
        ({"args": ["http://svc:3333/api", "ws://x:4444"]}, []),
        ({"args": ["--port", "3333"]}, []),
        ({"args": ["--port=3333"]}, []),
        ({"args": ["localhost:3333", "0.0.0.0:4444", "127.0.0.1:3333", ":3333"]}, []),
        ({"args": ["12:30", "10:3333", "2024-01-01T10:33:33Z"]}, []),
        ({"command": ["sh", "-c", "chronyd; echo 'local stratum 10' >> /etc/chrony.conf"]}, []),
        ({"env": [{"name": "NTP", "value": "local stratum 10"}, {"name": "S", "value": "stratum+tcp"}]}, []),
    ],
)
def test_pool_rules(fields: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    assert found(policy(POOLS), pod(container(**fields))) == expected


def test_same_port_on_different_hosts_is_reported_per_host() -> None:
    w = pod(container(args=["a.example:3333", "b.example:3333", "a.example:3333"]))
    details = [e.detail for e in spec_findings(policy(POOLS), w)]
    assert details == ["pool port 3333 in a.example:3333 in args", "pool port 3333 in b.example:3333 in args"]


def test_env_location_is_named() -> None:
    [e] = spec_findings(policy(POOLS), pod(container(env=[{"name": "URL", "value": "stratum+tcp://p:1"}])))
    assert e.detail == "pool URL stratum+tcp://p:1 in env URL"
    assert e.container == "c"


# ------------------------------------------------------------------ processes

PROCS = {"processes": [{"glob": "xmrig*"}, {"glob": "kdevtmpfsi"}, {"regex": "^kswapd0$", "note": "Outlaw"}]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"command": ["/usr/local/bin/xmrig", "-c", "cfg.json"]}, [("command", "xmrig")]),
        ({"args": ["./xmrig-6.21"]}, [("args", "xmrig-6.21")]),
        ({"command": ["/bin/app"], "args": ["xmrig"]}, []),  # args[0] only without a command
        ({"command": ["sh", "-c"], "args": ["cd /tmp; ./kdevtmpfsi &"]}, [("shell script in args", "kdevtmpfsi")]),
        (
            {"command": ["/bin/bash", "-ec", "nohup /tmp/.k/kswapd0 >/dev/null 2>&1"]},
            [("shell script in command", "kswapd0")],
        ),
        ({"command": ["busybox", "sh", "-c", "wget -q x && XMRig"]}, [("shell script in command", "XMRig")]),
        ({"command": ["bash", "/tmp/kdevtmpfsi"]}, [("command", "kdevtmpfsi")]),
        ({"command": ["sh", "-c", "echo xmrig is bad; grep xmrig /proc/1/cmdline"]}, []),
        ({"command": ["python", "-c", "import os; os.system('x')"]}, []),  # not a shell
    ],
)
def test_process_rules(fields: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    evidence = spec_findings(policy(PROCS), pod(container(**fields)))
    assert [(e.detail.split(" in ", 1)[1].split(" (")[0], e.value) for e in evidence] == expected


def test_process_detail_and_note() -> None:
    [e] = spec_findings(policy(PROCS), pod(container(command=["kswapd0"])))
    assert e.detail == 'process "kswapd0" in command (Outlaw)'
    [e] = spec_findings(policy(PROCS), pod(container(command=["xmrig"])))
    assert e.detail == 'process "xmrig" in command'


# ------------------------------------------------------------------ arguments

ARGS = {
    "arguments": [
        {"glob": "--donate-level*"},
        {"glob": "--coin=monero"},
        {"regex": r"(^|\s)(-a|--algo)(=|\s+)rx/0(\s|$)"},
        {"glob": "--threads*", "strength": "Weak"},
    ]
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"args": ["--donate-level=1"]}, [("argument", "Strong", "--donate-level=1")]),
        ({"args": ["--donate-level", "1"]}, [("argument", "Strong", "--donate-level")]),
        ({"args": ["--coin=MONERO"]}, [("argument", "Strong", "--coin=MONERO")]),
        ({"args": ["-a", "rx/0"]}, [("argument", "Strong", "-a rx/0")]),
        ({"command": ["m", "--algo=rx/0"]}, [("argument", "Strong", "--algo=rx/0")]),
        (
            {"command": ["sh", "-c", "./x --donate-level 0 -a rx/0"]},
            [("argument", "Strong", "--donate-level"), ("argument", "Strong", "-a rx/0")],
        ),
        ({"args": ["--threads=4"]}, [("argument", "Weak", "--threads=4")]),
        ({"args": ["-a", "rx/01"]}, []),
        ({"args": ["--donate"]}, []),
    ],
)
def test_argument_rules(fields: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    assert found(policy(ARGS), pod(container(**fields))) == expected


# ------------------------------------------------------------------ wallets


@pytest.mark.parametrize(
    ("text", "wallet", "strength"),
    [
        (WALLET, WALLET, "Weak"),  # no miner context: a shop's receive address looks the same
        (f"-u {WALLET}.rig1", WALLET, "Strong"),
        (f"-u{WALLET}.rig1", WALLET, "Strong"),
        (f"--user={SUBADDRESS}", SUBADDRESS, "Strong"),
        (f"--wallet-address {SUBADDRESS}", SUBADDRESS, "Strong"),
        (f"pay {INTEGRATED}", INTEGRATED, "Weak"),
        (f"stratum+tcp://{WALLET}:x@pool:3333", WALLET, "Strong"),
        (f'{{"pools": [{{"url": "pool:3333", "user": "{WALLET}"}}]}}', WALLET, "Strong"),
    ],
)
def test_monero_wallets(text: str, wallet: str, strength: str) -> None:
    p = policy({"wallets": {"monero": True}})
    [e] = spec_findings(p, pod(container(args=[text])))
    assert (e.signal, e.strength) == ("wallet", strength)
    assert e.value == f"{wallet[:8]}…{wallet[-6:]}"
    assert wallet not in e.detail and e.value in e.detail


@pytest.mark.parametrize(
    "text",
    [
        WALLET[:-1],  # 94 characters
        WALLET + "A",  # 96 characters
        "1" + WALLET[1:],  # wrong first character
        WALLET[:50] + "0" + WALLET[51:],  # 0 is not base58
        "4" * 95 + "1",
        "sha256:" + "4" * 64,
    ],
)
def test_not_monero_wallets(text: str) -> None:
    assert spec_findings(policy({"wallets": {"monero": True}}), pod(container(args=[text]))) == ()


def test_wallet_in_env_and_patterns() -> None:
    eth = "0x" + "a1" * 20
    p = policy(
        {
            "wallets": {
                "monero": True,
                "patterns": [{"regex": r"(?:^|\W)(0x[0-9a-f]{40})(?:\W|$)"}, {"glob": "bc1q*", "strength": "Weak"}],
            }
        }
    )
    w = pod(
        container(
            env=[{"name": "WALLET", "value": WALLET}, {"name": "ETH", "value": f"to {eth} now"}],
            args=["bc1qxyz", "--user", "$(WALLET)"],
        )
    )
    evidence = spec_findings(p, w)
    assert [(e.signal, e.strength, e.detail.split(" in ")[-1].split(" (")[0]) for e in evidence] == [
        ("wallet", "Weak", "args"),
        ("wallet", "Strong", "args"),  # passed to a miner (--user $(WALLET), expanded from the env)
        ("wallet", "Weak", "env ETH"),  # alone: Weak whatever the pattern says
    ]
    assert evidence[2].value == f"{eth[:8]}…{eth[-6:]}"


# ------------------------------------------------------------------ containers, order, de-duplication


def test_every_container_kind_is_read_in_order() -> None:
    w = workload_from_pod(
        {
            "spec": {
                "containers": [{"name": "main", "command": ["xmrig"]}],
                "initContainers": [{"name": "init", "command": ["kdevtmpfsi"]}],
                "ephemeralContainers": [{"name": "dbg", "args": ["xmrig-notls"]}],
            }
        }
    )
    assert [(e.container, e.value) for e in spec_findings(policy(PROCS), w)] == [
        ("main", "xmrig"),
        ("init", "kdevtmpfsi"),
        ("dbg", "xmrig-notls"),
    ]


def test_duplicates_are_reported_once_and_strong_wins() -> None:
    p = policy({"processes": [{"glob": "xmr*", "strength": "Weak"}, {"glob": "xmrig"}]})
    w = pod(container(command=["sh", "-c", "xmrig; xmrig"]))
    evidence = spec_findings(p, w)
    assert [(e.signal, e.strength, e.value) for e in evidence] == [("process", "Strong", "xmrig")]


def test_signal_kinds_come_in_a_fixed_order() -> None:
    p = policy(
        {
            "wallets": {"monero": True},
            "arguments": [{"glob": "--donate-level*"}],
            "processes": [{"glob": "xmrig"}],
            "pools": {"schemes": ["stratum+tcp"]},
            "images": [{"glob": "*xmrig*"}],
        }
    )
    w = pod(
        container(
            image="x/xmrig", command=["xmrig"], args=["-o", "stratum+tcp://p:1", "-u", WALLET, "--donate-level=1"]
        )
    )
    assert [e.signal for e in spec_findings(p, w)] == ["image", "poolEndpoint", "process", "argument", "wallet"]
    assert evaluate(p, w, None) == evaluate(p, w, None)


# ------------------------------------------------------------------ the match rule and actions

WEAK = {
    "images": [{"glob": "*miner*", "strength": "Weak"}],
    "processes": [{"glob": "miner*", "strength": "Weak"}],
    "pools": {"ports": [{"port": 3333}]},
    "cpu": {"pod": {"threshold": 0.9}},
}


def cpu_finding(strength: str = "Weak") -> Evidence:
    return Evidence(
        signal="podCpu", strength=strength, container="", detail="CPU at 97% of limit", value="0.97", window="5m"
    )


def test_one_strong_finding_is_enough() -> None:
    verdict = evaluate(policy(PROCS), pod(container(command=["xmrig"])), None)
    assert verdict.matched is True
    assert verdict.actions == ("quarantine",)
    assert verdict.mode == "Enforce" and verdict.policy == "p"
    assert verdict.reason == "1 strong signal: process xmrig"


def test_weak_findings_need_distinct_kinds() -> None:
    p = policy(WEAK)
    one_kind = pod(container(args=["a.example:3333", "b.example:3333"]))
    verdict = evaluate(p, one_kind, None)
    assert verdict.matched is False and len(verdict.evidence) == 2
    assert verdict.reason.startswith("1 weak signal kind of 2 needed")
    two_kinds = pod(container(image="x/miner", args=["a.example:3333"]))
    verdict = evaluate(p, two_kinds, None)
    assert verdict.matched is True
    assert verdict.reason.startswith("2 weak signal kinds: image x/miner, poolPort 3333")


def test_weak_signals_required_is_honoured() -> None:
    p = policy(WEAK, match={"weakSignalsRequired": 3})
    w = pod(container(image="x/miner", command=["miner"], args=["a.example:3333"]))
    assert evaluate(p, w, None).matched is True
    assert evaluate(p, pod(container(image="x/miner", args=["a.example:3333"])), None).matched is False


def test_metric_findings_count_like_spec_findings() -> None:
    p = policy(WEAK)
    w = pod(container(args=["a.example:3333"]))
    verdict = evaluate(p, w, None, [cpu_finding()])
    assert verdict.matched is True
    assert [e.signal for e in verdict.evidence] == ["poolPort", "podCpu"]
    assert evaluate(p, pod(container()), None, [cpu_finding("Strong")]).matched is True
    assert len(evaluate(p, w, None, [cpu_finding(), cpu_finding()]).evidence) == 2  # de-duplicated


def test_required_kinds_must_all_be_found() -> None:
    p = policy(WEAK, match={"requireSignals": ["podCpu"]})
    w = pod(container(image="x/miner", args=["a.example:3333"]))
    verdict = evaluate(p, w, None)
    assert verdict.matched is False
    assert verdict.reason.startswith("required signal kinds missing (podCpu)")
    assert evaluate(p, pod(container(args=["a.example:3333"])), None, [cpu_finding()]).matched is True
    strong = policy(
        {"processes": [{"glob": "xmrig"}], "cpu": {"pod": {"threshold": 1}}}, match={"requireSignals": ["podCpu"]}
    )
    assert evaluate(strong, pod(container(command=["xmrig"])), None).matched is False


def test_no_findings() -> None:
    verdict = evaluate(policy(PROCS), pod(container(command=["nginx"])), None)
    assert (verdict.matched, verdict.evidence, verdict.actions, verdict.reason) == (False, (), (), "no signals found")


def test_audit_mode_never_has_actions() -> None:
    p = policy(PROCS, mode="Audit")
    verdict = evaluate(p, pod(container(command=["xmrig"]), hostPID=True), None)
    assert verdict.matched is True and verdict.mode == "Audit" and verdict.actions == ()


ACTIONS = [{"name": "quarantine"}, {"name": "cordon", "when": "HostAccess"}, {"name": "scaleOwner", "when": "Always"}]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ({}, ("quarantine", "scaleOwner")),
        ({"hostPID": True}, ("quarantine", "cordon", "scaleOwner")),
        ({"hostNetwork": True}, ("quarantine", "cordon", "scaleOwner")),
        ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, ("quarantine", "cordon", "scaleOwner")),
    ],
)
def test_host_access_actions(host: dict[str, Any], expected: tuple[str, ...]) -> None:
    p = policy(PROCS, actions=ACTIONS)
    assert evaluate(p, pod(container(command=["xmrig"]), **host), None).actions == expected


def test_privileged_container_gets_host_access_actions() -> None:
    p = policy(PROCS, actions=ACTIONS)
    w = pod(container(command=["xmrig"], securityContext={"privileged": True}))
    assert evaluate(p, w, None).actions == ("quarantine", "cordon", "scaleOwner")


def test_reason_lists_at_most_three_findings() -> None:
    p = policy({"processes": [{"glob": "*"}]})
    w = pod(container(command=["sh", "-c", "a; b; c; d; e"]))
    verdict = evaluate(p, w, None)
    assert verdict.reason == "6 strong signals: process sh, process a, process b and 3 more"


def test_metric_findings_of_undeclared_kinds_are_ignored() -> None:
    p = policy(PROCS)  # no cpu signals
    verdict = evaluate(p, pod(container(command=["nginx"])), None, [cpu_finding("Strong")])
    assert (verdict.matched, verdict.evidence) == (False, ())


# ------------------------------------------------------------------ nodes

NODE_SIGNALS = {"cpu": {"unaccounted": {"cores": 1, "strength": "Strong"}, "node": {"threshold": 0.9}}}
NODE_ACTIONS = [
    {"name": "quarantine"},
    {"name": "cordon", "when": "HostAccess"},
    {"name": "taint"},
    {"name": "scaleOwner"},
]


def node_finding(signal: str = "nodeUnaccountedCpu", strength: str = "Strong") -> Evidence:
    return Evidence(signal=signal, strength=strength, container="", detail="3.2 cores unaccounted", value="3.2")


def test_node_finding_matches_with_node_actions_only() -> None:
    p = policy(NODE_SIGNALS, actions=NODE_ACTIONS)
    verdict = evaluate_node(p, "node-1", {}, [node_finding()])
    assert verdict.matched is True
    assert verdict.actions == ("cordon", "taint")
    assert verdict.reason == "node node-1: 1 strong signal: nodeUnaccountedCpu 3.2"
    assert evaluate_node(policy(NODE_SIGNALS, mode="Audit"), "node-1", None, [node_finding()]).actions == ()


def test_node_findings_follow_the_match_rule() -> None:
    p = policy(NODE_SIGNALS, actions=NODE_ACTIONS)
    weak = [node_finding("nodeCpu", "Weak")]
    assert evaluate_node(p, "n", {}, weak).matched is False
    both_weak = [node_finding("nodeCpu", "Weak"), node_finding("nodeUnaccountedCpu", "Weak")]
    assert evaluate_node(p, "n", {}, both_weak).matched is True
    pod_level = [Evidence(signal="podCpu", strength="Strong", container="", detail="x")]
    assert evaluate_node(p, "n", {}, pod_level).evidence == ()


def test_pod_scoped_policies_do_not_judge_nodes() -> None:
    p = policy(NODE_SIGNALS, actions=NODE_ACTIONS, scope={"podSelector": {"matchLabels": {"app": "x"}}})
    verdict = evaluate_node(p, "n", {}, [node_finding()])
    assert (verdict.matched, verdict.reason) == (False, "not in scope")
    excluded_only = policy(NODE_SIGNALS, actions=NODE_ACTIONS, scope={"excludedNamespaces": ["kube-system"]})
    assert evaluate_node(excluded_only, "n", {}, [node_finding()]).matched is True
