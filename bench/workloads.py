"""What the benchmark puts in the cluster: namespaces, MinerPolicies, benign and miner pods.

Pods are plain dicts (the API accepts them as they are) so that the load generator does
not spend its time building client model objects. Every pod the benchmark creates carries
``mgbench/role`` (benign, miner or cpu) so that checks can tell them apart afterwards.
"""

from __future__ import annotations

from typing import Any

GROUP, VERSION = "minerguard.io", "v1alpha1"
BENCH_LABEL = "minerguard-bench"  # on namespaces: which contender acts there ("ours" or "competitor")
ROLE_LABEL = "mgbench/role"
QUARANTINE_LABEL = "minerguard.io/quarantined"
QUARANTINE_POLICY = "minerguard-quarantine"
WALLET = "4" + "A" * 94
MINER_ARGS = ["-o", "stratum+tcp://pool.supportxmr.com:3333", "-u", WALLET, "--donate-level", "1"]
CPU_ANNOTATION = "kwok.x-k8s.io/usage-cpu"

# Benign workloads of the kind a real cluster runs; none names a miner, a pool or a wallet.
BENIGN_SHAPES: list[tuple[str, list[str], list[str], dict[str, str]]] = [
    ("nginx:1.27", ["nginx"], ["-g", "daemon off;"], {"UPSTREAM": "http://api:8080"}),
    ("python:3.12-slim", ["gunicorn"], ["app:wsgi", "--workers", "4", "--bind", "0.0.0.0:8000"], {}),
    ("redis:7", ["redis-server"], ["--appendonly", "yes"], {}),
    ("node:22", ["npm"], ["run", "start", "--", "--port", "3333"], {"NODE_ENV": "production"}),
    ("selenium/hub:4", ["/opt/bin/entry_point.sh"], [], {"SE_HUB_PORT": "4444"}),
    ("busybox:1.36", ["sh"], ["-c", "while true; do sleep 3600; done"], {}),
    ("golang:1.23", ["/app/server"], ["--listen", ":9090", "--threads", "8"], {"GOMAXPROCS": "2"}),
    ("postgres:16", ["postgres"], ["-c", "max_connections=200"], {"POSTGRES_DB": "shop"}),
]


def namespace(name: str, contender: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {BENCH_LABEL: contender}}}


def scope(contender: str = "ours") -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {BENCH_LABEL: contender}}}


def miner_policy(name: str = "bench-miners", image_config: bool = False) -> dict[str, Any]:
    """The Enforce policy of the benchmark: miner programs and stratum URLs, action quarantine
    (``image_config``: also in the images' configs, ``run.py --inspect-images``)."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MinerPolicy",
        "metadata": {"name": name},
        "spec": {
            "mode": "Enforce",
            "scope": scope(),
            "signals": {
                "processes": [
                    {"glob": "xmrig*"},
                    {"glob": "xmr-stak*"},
                    {"glob": "cpuminer*"},
                    {"glob": "kdevtmpfsi"},
                    {"glob": "kswapd0"},
                ],
                "pools": {"schemes": ["stratum+tcp", "stratum+ssl"]},
            },
            "actions": [{"name": "quarantine"}],
        },
    }
    if image_config:
        body["spec"]["signals"]["imageConfig"] = True  # type: ignore[index]
    return body


def cpu_policy(name: str = "bench-cpu", window: str = "30s") -> dict[str, Any]:
    """A metric policy: a pod at 90% of its CPU limit for ``window`` is contained on its own."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MinerPolicy",
        "metadata": {"name": name},
        "spec": {
            "mode": "Enforce",
            "scope": scope(),
            "signals": {
                "cpu": {"pod": {"threshold": 0.9, "window": window, "relativeTo": "Limit", "strength": "Strong"}}
            },
            "actions": [{"name": "quarantine"}],
        },
    }


def _container(image: str, command: list[str], args: list[str], env: dict[str, str], cpu_limit: str) -> dict[str, Any]:
    return {
        "name": "main",
        "image": image,
        "command": command,
        "args": args,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": cpu_limit, "memory": "64Mi"}},
    }


def benign_pod(name: str, index: int, registry: str = "") -> dict[str, Any]:
    """A benign pod of the index's shape; its image in ``registry`` (``host:port``, under ``bench/``) if given."""
    image, command, args, env = BENIGN_SHAPES[index % len(BENIGN_SHAPES)]
    app = image.split(":")[0].split("/")[-1]
    image = f"{registry}/bench/{image}" if registry else image
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {ROLE_LABEL: "benign", "app": app}},
        "spec": {
            "containers": [_container(image, command, args, env, "200m")],
            "terminationGracePeriodSeconds": 0,
        },
    }


def miner_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {ROLE_LABEL: "miner", "app": name}},
        "spec": {
            "containers": [_container("alpine:3.20", ["xmrig"], MINER_ARGS, {}, "1")],
            "terminationGracePeriodSeconds": 0,
        },
    }


def cpu_pod(name: str) -> dict[str, Any]:
    """A pod whose spec is innocent; only its (simulated) CPU use can give it away."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {ROLE_LABEL: "cpu", "app": name}},
        "spec": {
            "containers": [_container("example/render:2", ["/app/render"], ["--queue", "jobs"], {}, "1")],
            "terminationGracePeriodSeconds": 0,
        },
    }
