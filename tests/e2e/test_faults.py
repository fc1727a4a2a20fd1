"""Faults during containment: operator crash, apiserver restart, conflicts, 5xx, deleted pods, slow Prometheus, HA.

Every test ends by checking that each matched pod is contained exactly once (one incident per
workload, one pod record, one deny-all policy per namespace) and that no benign pod was touched.
Figures (faults injected, pods affected, outcome, times) go to ``.cluster/reliability.jsonl``;
docs/reliability.md reports them.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from minerguard.domain import netpol
from tests.e2e.helpers import CLUSTER_DIR, cluster_component, consistently, eventually, kubectl, record
from tests.e2e.objects import (
    GROUP,
    VERSION,
    allow_all,
    incidents,
    isolation_problems,
    miner_pod,
    quarantined,
)
from tests.e2e.operator_proc import OperatorProcess


def benign_pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "web"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")]),
    )


def create_retrying(core: client.CoreV1Api, namespace: str, pod: client.V1Pod, deadline: float = 120) -> None:
    """Create a pod, retrying while the apiserver is away (a user's client would do the same)."""
    end = time.monotonic() + deadline
    while True:
        try:
            core.create_namespaced_pod(namespace, pod)
            return
        except ApiException as exc:
            if exc.status == 409:
                return
            if time.monotonic() > end:
                raise
        except Exception:
            if time.monotonic() > end:
                raise
        threading.Event().wait(0.5)


def contained_exactly_once(
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    miners: list[str],
) -> None:
    for name in miners:
        assert isolation_problems(core, networking, namespace, name) == [], name
    items = incidents(custom, namespace)
    assert sorted(i["metadata"]["name"] for i in items) == sorted(f"pod-{m}" for m in miners)
    for item in items:
        pods = item["status"]["pods"]
        assert len(pods) == 1 and pods[0]["state"] == "Contained", item["metadata"]["name"]
        quarantines = [a for a in item["status"]["actions"] if a["action"] == "quarantine"]
        assert [a["result"] for a in quarantines].count("Succeeded") == 1, quarantines
    assert [p.metadata.name for p in networking.list_namespaced_network_policy(namespace).items] == [
        netpol.QUARANTINE_POLICY
    ]


def untouched(core: client.CoreV1Api, namespace: str, benign: list[str]) -> None:
    for name in benign:
        pod = core.read_namespaced_pod(name, namespace)
        managers = {m.manager for m in pod.metadata.managed_fields or []}
        assert not any("minerguard" in m for m in managers), (name, managers)
        assert netpol.QUARANTINE_LABEL not in (pod.metadata.labels or {})


def all_contained(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, miners: list[str]) -> bool:
    states = {i["metadata"]["name"]: (i.get("status") or {}).get("state") for i in incidents(custom, namespace)}
    return all(states.get(f"pod-{m}") == "Contained" for m in miners) and all(
        quarantined(core, namespace, m) for m in miners
    )


def test_operator_killed_mid_burst_loses_and_duplicates_nothing(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace)
    miners = [f"miner-{i}" for i in range(20)]
    benign = [f"web-{i}" for i in range(5)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: core.create_namespaced_pod(namespace, miner_pod(n)), miners[:10]))
        list(pool.map(lambda n: core.create_namespaced_pod(namespace, benign_pod(n)), benign))
    eventually(lambda: sum(quarantined(core, namespace, m) for m in miners[:10]) >= 2, 30, "the burst under way")
    before = sum(quarantined(core, namespace, m) for m in miners[:10])
    operator.kill()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: core.create_namespaced_pod(namespace, miner_pod(n)), miners[10:]))
    started = time.monotonic()
    operator.start()
    eventually(lambda: all_contained(core, custom, namespace, miners), 90, "all 20 miners contained after restart")
    recovery = time.monotonic() - started
    contained_exactly_once(core, networking, custom, namespace, miners)
    untouched(core, namespace, benign)
    record(
        "operator SIGKILL mid-burst",
        fault="SIGKILL of the operator with 10 miners in flight, 10 more created while it was down",
        pods=len(miners),
        benign=len(benign),
        contained_before_kill=before,
        seconds_from_restart_to_all_contained=round(recovery, 1),
        outcome="all contained exactly once",
    )


def test_apiserver_restart_mid_burst(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace)
    miners = [f"miner-{i}" for i in range(24)]
    restart = threading.Thread(target=cluster_component, args=("restart", "kube-apiserver"))
    for i, name in enumerate(miners):
        if i == 8:
            restart.start()
        create_retrying(core, namespace, miner_pod(name))
    restart.join()
    eventually(lambda: all_contained(core, custom, namespace, miners), 120, "every miner contained")
    contained_exactly_once(core, networking, custom, namespace, miners)
    record(
        "kube-apiserver restart mid-burst",
        fault="kube-apiserver stopped and started after 8 of 24 creates",
        pods=len(miners),
        outcome="watches re-established; all contained exactly once",
    )


def test_conflicting_writes_are_retried(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """A namespace admin keeps editing the allow policy while the operator must add its exclusion to it."""
    make_policy(namespace)
    networking.create_namespaced_network_policy(namespace, allow_all())
    conflicts_before = operator.metric("minerguard_api_errors_total") or 0.0
    stop = threading.Event()
    edits = 0

    def churn() -> None:
        nonlocal edits
        while not stop.is_set():
            try:
                networking.patch_namespaced_network_policy(
                    "allow-all", namespace, {"metadata": {"annotations": {"edit": str(edits)}}}
                )
                edits += 1
            except ApiException:
                pass

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        miners = [f"miner-{i}" for i in range(6)]
        for name in miners:
            core.create_namespaced_pod(namespace, miner_pod(name))
        eventually(lambda: all_contained(core, custom, namespace, miners), 60, "miners contained despite the churn")
    finally:
        stop.set()
        churner.join()
    contained_exactly_once_with_allow = isolation_problems
    for name in miners:
        assert contained_exactly_once_with_allow(core, networking, namespace, name) == []
    errors = (operator.metric("minerguard_api_errors_total") or 0.0) - conflicts_before
    record(
        "409 conflicts",
        fault=f"{edits} concurrent edits of the allow policy",
        pods=len(miners),
        api_errors_retried=errors,
        outcome="exclusion applied; all contained",
    )


class FlakyWebhook:
    """A validating admission webhook that fails its first ``failures`` calls: the apiserver answers 500."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.dir = Path(tempfile.mkdtemp())
        pki = CLUSTER_DIR / "pki"
        key, csr, crt = (self.dir / n for n in ("hook.key", "hook.csr", "hook.crt"))
        (self.dir / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        subprocess.run(
            [
                "openssl",
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=flaky-webhook",
                "-keyout",
                str(key),
                "-out",
                str(csr),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(pki / "ca.crt"),
                "-CAkey",
                str(pki / "ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                str(crt),
                "-extfile",
                str(self.dir / "ext"),
            ],
            check=True,
            capture_output=True,
        )
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.calls += 1
                if hook.calls <= hook.failures:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": {"uid": review["request"]["uid"], "allowed": True},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def flaky_networkpolicy_writes(namespace: str) -> Iterator[FlakyWebhook]:
    import base64

    hook = FlakyWebhook(failures=3)
    ca = base64.b64encode((CLUSTER_DIR / "pki" / "ca.crt").read_bytes()).decode()
    name = f"flaky-{namespace}"
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": name},
                "webhooks": [
                    {
                        "name": "flaky.minerguard.test",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Fail",
                        "timeoutSeconds": 5,
                        "clientConfig": {"url": f"https://127.0.0.1:{hook.port}/", "caBundle": ca},
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                        "rules": [
                            {
                                "apiGroups": ["networking.k8s.io"],
                                "apiVersions": ["v1"],
                                "resources": ["networkpolicies"],
                                "operations": ["CREATE", "UPDATE"],
                            }
                        ],
                    }
                ],
            }
        ),
    )
    yield hook
    kubectl("delete", "validatingwebhookconfiguration", name, check=False)
    hook.close()


def test_transient_server_errors_on_writes_are_retried(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
    flaky_networkpolicy_writes: FlakyWebhook,
) -> None:
    make_policy(namespace)
    transient_before = operator.metric("minerguard_api_errors_total") or 0.0
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(lambda: all_contained(core, custom, namespace, ["miner"]), 60, "contained after the 500s")
    contained_exactly_once(core, networking, custom, namespace, ["miner"])
    assert flaky_networkpolicy_writes.calls >= 4
    errors = (operator.metric("minerguard_api_errors_total") or 0.0) - transient_before
    assert errors >= 3
    record(
        "5xx on writes",
        fault="the apiserver answered 500 to the first 3 NetworkPolicy writes (failing webhook)",
        pods=1,
        api_errors_retried=errors,
        outcome="retried with backoff; contained exactly once",
    )


def test_pods_deleted_mid_containment_end_cleanly(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace)
    log_start = operator.log_size()
    miners = [f"miner-{i}" for i in range(10)]
    for name in miners:
        core.create_namespaced_pod(namespace, miner_pod(name))
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    eventually(lambda: not core.list_namespaced_pod(namespace).items, 60, "every deleted pod gone")

    def settled() -> bool:
        return all((i.get("status") or {}).get("state") == "Ended" for i in incidents(custom, namespace))

    eventually(settled, 60, "every incident opened for a deleted pod says Ended")
    for item in incidents(custom, namespace):
        assert all(p["state"] == "Deleted" for p in item["status"]["pods"]), item["status"]
    core.create_namespaced_pod(namespace, miner_pod("after"))
    eventually(lambda: quarantined(core, namespace, "after"), 30, "the operator still contains new miners")
    assert "Traceback" not in operator.log_since(log_start)
    record(
        "pods deleted mid-containment",
        fault="10 miners deleted right after creation",
        pods=len(miners),
        incidents_opened=len(incidents(custom, namespace)) - 1,
        outcome="incidents Ended, pods Deleted",
    )


def test_slow_prometheus_keeps_spec_detection_and_recovers(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    spec = {
        "mode": "Audit",
        "signals": {"cpu": {"pod": {"threshold": 0.9, "window": "20s", "strength": "Strong"}}},
        "scope": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
    }
    cpu_policy = make_policy(namespace, spec=spec)
    make_policy(namespace)

    def metrics_available() -> str:
        obj = custom.get_cluster_custom_object(GROUP, VERSION, "minerpolicies", cpu_policy)
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        return str(conds.get("MetricsAvailable", {}).get("status"))

    eventually(lambda: metrics_available() == "True", 30, "metrics available first")
    pid = int((CLUSTER_DIR / "pids" / "prometheus.pid").read_text())
    os.kill(pid, signal.SIGSTOP)  # Prometheus still accepts connections but answers nothing
    try:
        eventually(lambda: metrics_available() == "False", 30, "MetricsAvailable=False while Prometheus hangs")
        core.create_namespaced_pod(namespace, miner_pod("miner"))
        eventually(lambda: quarantined(core, namespace, "miner"), 30, "spec detection while Prometheus hangs")
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: metrics_available() == "True", 60, "metric detection resumes")
    record(
        "slow Prometheus",
        fault="Prometheus frozen (SIGSTOP): queries time out",
        pods=1,
        outcome="spec detection unaffected; MetricsAvailable False then True",
    )


def test_two_replicas_only_one_acts_and_handover_is_bounded(
    paused_session_operator: None,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "minerguard-ha-test"}}
        ),
    )
    ha = {"MINERGUARD_PEERING": "minerguard-ha-test", "MINERGUARD_PEERING_LIFETIME": "10"}
    first = OperatorProcess("ha-a", extra_env={**ha, "MINERGUARD_PRIORITY": "200"}, standalone=False)
    second = OperatorProcess("ha-b", extra_env={**ha, "MINERGUARD_PRIORITY": "100"}, standalone=False)
    a_start, b_start = first.log_size(), second.log_size()
    first.start()
    second.start()
    try:
        make_policy(namespace)
        core.create_namespaced_pod(namespace, miner_pod("miner-1"))
        eventually(lambda: quarantined(core, namespace, "miner-1"), 60, "the active replica contains a miner")
        consistently(lambda: "Quarantined Pod" not in second.log_since(b_start), 3, "the standby does not act")
        assert "Quarantined Pod" in first.log_since(a_start)

        first.kill()
        killed = time.monotonic()
        core.create_namespaced_pod(namespace, miner_pod("miner-2"))
        eventually(lambda: quarantined(core, namespace, "miner-2"), 90, "the standby takes over")
        handover = time.monotonic() - killed
        eventually(lambda: "Quarantined Pod" in second.log_since(b_start), 10, "the standby's own log says it acted")
        record(
            "HA handover",
            fault="SIGKILL of the active replica of two (kopf peering, lifetime 10 s)",
            pods=2,
            seconds_from_kill_to_containment=round(handover, 1),
            outcome="only one acted; the standby took over",
        )
    finally:
        first.stop()
        second.stop()
        kubectl("delete", "clusterkopfpeering", "minerguard-ha-test", check=False)


def hold_incident_creates(namespace: str) -> str:
    """A ValidatingAdmissionPolicy refusing every MinerIncident create in ``namespace``: the record fails."""
    name = f"hold-incidents-{namespace}"[:63]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE"],
                        "resources": ["minerincidents"],
                    }
                ]
            },
            "validations": [{"expression": "false", "message": "held by the test: the incident cannot be written"}],
        },
    }
    bound = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, bound]})


def incident_create_refused(namespace: str) -> bool:
    probe = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MinerIncident",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"policy": "p", "mode": "Audit", "workload": {"kind": "Pod", "name": "probe"}},
    }
    res = kubectl("create", "-f", "-", "--dry-run=server", stdin=json.dumps(probe), check=False)
    return res.returncode != 0


def test_operator_killed_between_the_cut_and_the_incident_loses_nothing(
    paused_session_operator: None,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """The cut comes before the incident: with the incident's create refused, the miner is still cut off; the
    operator is killed in that state and started again once creates pass, and the incident is there."""
    held = hold_incident_creates(namespace)
    kubectl("apply", "-f", "-", stdin=held)
    operator = OperatorProcess("operator-cut")
    try:
        eventually(lambda: incident_create_refused(namespace), 30, "incident creates refused")
        operator.start()
        make_policy(namespace)  # Ready once the operator reports it
        core.create_namespaced_pod(namespace, miner_pod("miner"))
        eventually(lambda: isolation_problems(core, networking, namespace, "miner") == [], 30, "cut off, no incident")
        assert not incidents(custom, namespace)
        operator.kill()
        kubectl("delete", "-f", "-", stdin=held)
        eventually(lambda: not incident_create_refused(namespace), 30, "incident creates pass again")
        started = time.monotonic()
        operator.start()
        found = eventually(lambda: [i for i in incidents(custom, namespace) if i.get("status")], 30, "the incident")
        record("operator killed between the cut and the incident", outcome="incident written after restart",
               seconds_to_incident=round(time.monotonic() - started, 2))  # fmt: skip
        assert [i["metadata"]["name"] for i in found] == ["pod-miner"]
        eventually(lambda: incidents(custom, namespace)[0]["status"].get("state") == "Contained", 30, "Contained")
        assert incidents(custom, namespace)[0]["status"]["evidence"]
        assert quarantined(core, namespace, "miner")
    finally:
        operator.stop()
        kubectl("delete", "-f", "-", stdin=held, check=False)
