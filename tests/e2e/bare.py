"""A bare API server of a test's own (etcd and kube-apiserver, nothing else), and "is detection on?" against it.

A first install (CRDs not served yet), a rollback or an uninstall cannot be tried on the
session's shared cluster: its CRDs are shared, and the default pack's cluster-wide
MinerPolicies would act on the other tests' namespaces. So these tests start hack/cluster.py's
own etcd and kube-apiserver in a temporary directory. No controller-manager or scheduler runs
there: pods stay Pending (the operator reads their spec), and namespaces get no default
ServiceAccount unless the test makes one.

Detection is "on" when the operator, run as a process as the chart's ServiceAccount with the
chart's peering name, detects a new miner pod in the expected mode (and, in Enforce,
quarantines it).
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import bindir
from tests.e2e.helpers import eventually
from tests.e2e.operator_proc import OperatorProcess
from tests.scripts import load_script

QUARANTINE_LABEL = "minerguard.io/quarantined"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bare_apiserver(cluster: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """etcd and kube-apiserver of their own (hack/cluster.py's commands, in tmp_path): no CRD, no other user."""
    script = load_script("cluster")
    script.STATE_DIR = tmp_path / "bare"  # every path, pid file and log of the script lives under it
    ports = {"etcd": free_port(), "etcd_peer": free_port(), "apiserver": free_port()}
    script.make_certs(script.STATE_DIR / "pki")
    kubeconfig = script.STATE_DIR / "kubeconfig"
    script.write_kubeconfig(kubeconfig, script.STATE_DIR / "pki", ports["apiserver"])
    try:
        for component in ("etcd", "kube-apiserver"):
            script.start(component, ports)
            script.wait_ready(component, ports)
        yield kubeconfig
    finally:
        for component in ("kube-apiserver", "etcd"):
            script.stop(component, timeout=10)


def helm(*args: str, kubeconfig: Path) -> str:
    res = subprocess.run(
        [str(bindir() / "helm"), *args, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, f"helm {' '.join(args)} failed:\n{res.stderr}\n{res.stdout[-2000:]}"
    return res.stdout


class Bare:
    """kubectl and helm against a bare API server, and the operator run against it."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig, self.namespace = kubeconfig, namespace
        self.miners = itertools.count()
        self.operator: OperatorProcess | None = None

    def k(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(bindir() / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert not check or res.returncode == 0, f"kubectl {' '.join(args)}: {res.stderr}"
        return res

    def helm(self, *args: str) -> str:
        return helm(*args, "--namespace", self.namespace, kubeconfig=self.kubeconfig)

    def get(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.k("get", *args, "-o", "json").stdout))

    def names(self, kind: str) -> set[str]:
        return {i["metadata"]["name"] for i in self.get(kind)["items"]}

    def modes(self) -> dict[str, str]:
        return {p["metadata"]["name"]: p["spec"]["mode"] for p in self.get("minerpolicies")["items"]}

    def manifest_kinds(self, release: str) -> list[str]:
        return [d["kind"] for d in yaml.safe_load_all(self.helm("get", "manifest", release)) if d]

    def workload_namespace(self, name: str) -> None:
        self.k("create", "namespace", name)
        self.k("create", "serviceaccount", "default", "-n", name)  # no controller-manager makes it here

    def start_operator(self, tmp_path: Path, service_account: str, peering: str) -> OperatorProcess:
        """``minerguard run`` as the chart's ServiceAccount (a TokenRequest token), with the chart's peering."""
        token = self.k("create", "token", service_account, "-n", self.namespace, "--duration", "1h").stdout.strip()
        admin = yaml.safe_load(self.kubeconfig.read_text())
        config = tmp_path / f"{service_account}.kubeconfig"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "bare", "cluster": admin["clusters"][0]["cluster"]}],
                    "users": [{"name": "op", "user": {"token": token}}],
                    "contexts": [{"name": "op", "context": {"cluster": "bare", "user": "op"}}],
                    "current-context": "op",
                }
            )
        )
        self.operator = OperatorProcess(
            f"bare-{uuid.uuid4().hex[:6]}",
            extra_env={
                "KUBECONFIG": str(config),
                "MINERGUARD_NAMESPACE": self.namespace,
                "MINERGUARD_PEERING": peering,
                "MINERGUARD_PROMETHEUS_URL": "",
            },
            standalone=False,
        )
        self.operator.start()
        return self.operator

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None

    def pod_labels(self, namespace: str, name: str) -> dict[str, str]:
        return dict(self.get("pod", name, "-n", namespace)["metadata"].get("labels") or {})

    def detects(self, step: str, namespace: str, mode: str) -> dict[str, Any]:
        """A new miner pod in ``namespace`` is detected in ``mode`` (and quarantined in Enforce); its incident."""
        assert self.operator is not None
        name = f"miner-{next(self.miners)}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "alpine:3.20", "command": ["xmrig", "--donate-level=1"]}]},
        }
        self.k("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))

        def incident() -> dict[str, Any] | None:
            for item in self.get("minerincidents", "-n", namespace)["items"]:
                if item["spec"]["workload"]["name"] == name and (item.get("status") or {}).get("state"):
                    return dict(item)
            return None

        log = self.operator.log_path
        found = eventually(incident, 60, f"{step}: the operator detects {name} (log: {log})")
        assert found["spec"]["mode"] == mode, (step, found["spec"])
        if mode == "Audit":
            assert QUARANTINE_LABEL not in self.pod_labels(namespace, name), step
        else:
            eventually(
                lambda: self.pod_labels(namespace, name).get(QUARANTINE_LABEL) == "true", 60, f"{step}: quarantined"
            )
        # The incident's conditions, as kstatus or Argo CD read them.
        want = ("False", "AuditOnly") if mode == "Audit" else ("True", "Contained")

        def conditions() -> dict[str, Any] | None:
            live = self.get("minerincident", found["metadata"]["name"], "-n", namespace)
            conds = {c["type"]: c for c in (live.get("status") or {}).get("conditions") or []}
            contained = conds.get("Contained") or {}
            if (contained.get("status"), contained.get("reason")) != want:
                return None
            assert conds["Detected"]["status"] == "True" and conds["Released"]["status"] == "False", conds
            assert {c["observedGeneration"] for c in conds.values()} == {live["metadata"]["generation"]}
            return conds

        eventually(conditions, 60, f"{step}: the incident's Contained condition is {want}")
        return found
