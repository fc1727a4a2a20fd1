"""The canary (#15) on the real control plane: what a miner says about the breach.

A namespace admin ``tenant-admin`` (impersonated, with an ``admin`` RoleBinding) creates a miner Deployment
while the chart's creator stamp (a MutatingAdmissionPolicy) is installed; its pods run under a
ServiceAccount that a RoleBinding lets read Secrets. The incident's foothold must name the creator, the
owner chain with its field manager, the ServiceAccount and its SubjectAccessReview table. The stamp is
admission's write, never the operator's: an unmatched pod created with it on gets no write from the operator.
The chart leaves it out by default and says so where the cluster cannot serve it. ``minerguard incident
describe`` prints the incident with the Events the operator emitted about it and its pods.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.cluster import helm_template, template_args
from tests.e2e.helpers import KUBECONFIG, ROOT, consistently, eventually, kubectl
from tests.e2e.objects import GROUP, VERSION, WALLET, deployment, miner_pod
from tests.e2e.operator_proc import OperatorProcess
from tests.e2e.test_chart import notes

CHART = ROOT / "helm" / "minerguard"
MAP_API = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"
CREATOR_STAMP = ("minerguard.io/created-by", "minerguard.io/created-by-groups")


@pytest.fixture
def creator_stamp() -> Iterator[None]:
    docs = helm_template(
        CHART,
        "--api-versions",
        MAP_API,
        "--show-only",
        "templates/creator-stamp.yaml",
        "--set",
        "creatorStamp.enabled=true",
    )
    assert [d["kind"] for d in docs] == ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]
    text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    kubectl("apply", "-f", "-", stdin=text)
    yield
    kubectl("delete", "-f", "-", stdin=text, check=False)


def incident(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "minerincidents", name))


def miner_deployment(name: str, account: str) -> dict[str, Any]:
    spec = miner_pod("x").spec
    spec.service_account_name = account
    body = client.ApiClient().sanitize_for_serialization(deployment(name, 1, spec))
    return {"apiVersion": "apps/v1", "kind": "Deployment", **body}


def test_the_foothold_names_the_creator_the_chain_the_manager_and_what_the_account_can_do(
    creator_stamp: None,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    kubectl("create", "rolebinding", "tenant-admin", "--clusterrole=admin", "--user=tenant-admin", "-n", namespace)
    kubectl("create", "serviceaccount", "builder", "-n", namespace)
    kubectl("create", "role", "read-secrets", "--verb=get", "--resource=secrets", "-n", namespace)
    grant = ("--role=read-secrets", f"--serviceaccount={namespace}:builder", "-n", namespace)
    kubectl("create", "rolebinding", "builder-secrets", *grant)
    make_policy(namespace)
    manifest = json.dumps(miner_deployment("miner", "builder"))

    def stamped() -> bool:  # a new admission policy takes a moment to be in force: a server-side dry run tells
        args = ("--as", "tenant-admin", "-n", namespace, "create", "--dry-run=server", "-o", "json", "-f", "-")
        probe = json.loads(kubectl(*args, stdin=manifest).stdout)
        return bool((probe["metadata"].get("annotations") or {}).get("minerguard.io/created-by"))

    eventually(stamped, 30, "the creator stamp in force")
    res = kubectl("--as", "tenant-admin", "-n", namespace, "create", "-f", "-", stdin=manifest, check=False)
    assert res.returncode == 0, res.stderr

    found = eventually(
        lambda: (incident(custom, namespace, "deployment-miner").get("status") or {}).get("foothold"),
        60,
        "the incident's foothold",
    )
    assert found["creator"]["username"] == "tenant-admin"
    chain = found["ownerChain"]
    assert [link["kind"] for link in chain] == ["Pod", "ReplicaSet", "Deployment"]
    assert chain[2]["name"] == "miner" and chain[2]["created"]
    assert "kubectl-create" in chain[2]["managers"]
    account = found["serviceAccount"]
    assert (account["name"], account["namespace"]) == ("builder", namespace)
    table = {row["can"]: row["allowed"] for row in account["reach"]}
    assert table["read Secrets"] == "yes"
    assert table["read Secrets cluster-wide"] == "no"
    assert table["create DaemonSets cluster-wide"] == "no" and table["impersonate users"] == "no"
    assert found["host"]["privileged"] is False and found["where"]["images"][0]["image"] == "alpine:3.20"
    assert "tenant-admin via Deployment/miner; sa builder can read Secrets" in found["summary"]
    wide = kubectl("get", "minerincident", "deployment-miner", "-n", namespace, "-o", "wide").stdout
    assert "tenant-admin via Deployment/miner" in wide and "FOOTHOLD" in wide
    described = kubectl("describe", "minerincident", "deployment-miner", "-n", namespace).stdout
    assert "Foothold:" in described and "read Secrets" in described
    cli = subprocess.run(
        [sys.executable, "-m", "minerguard", "incident", "describe", f"{namespace}/deployment-miner",
         "--kubeconfig", str(KUBECONFIG)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "Created By:        tenant-admin" in cli.stdout and "Deployment miner" in cli.stdout
    assert f"1. Rotate the token of ServiceAccount {namespace}/builder - it can read Secrets" in cli.stdout
    assert "2. Check the credentials of tenant-admin" in cli.stdout


def test_a_second_namespace_with_the_same_wallet_is_related_and_the_bill_grows_until_release(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    second = f"{namespace[:50]}-b"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=second, labels={"minerguard-test": "1"}))
    )
    try:
        helper = client.V1Pod(
            metadata=client.V1ObjectMeta(name="helper"),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="c", image="busybox", command=["sleep"], args=["--id", WALLET])]
            ),
        )
        eventually(lambda: core.create_namespaced_pod(second, helper), 30, "the helper pod (no policy there)")
        make_policy(namespace)
        burning = miner_pod("miner")
        burning.metadata.annotations = {"kwok.x-k8s.io/usage-cpu": "1"}
        core.create_namespaced_pod(namespace, burning)

        def related_found() -> dict[str, Any] | None:
            status = incident(custom, namespace, "pod-miner").get("status") or {}
            return status if any(r["namespace"] == second for r in status.get("related") or []) else None

        status = eventually(related_found, 60, "the helper in the second namespace listed as related")
        entry = next(r for r in status["related"] if r["namespace"] == second)
        assert entry["name"] == "helper" and entry["kind"] == "Pod" and entry["shares"][0].startswith("wallet 4AAAA")
        notes = [e.message for e in core.list_namespaced_event(namespace).items if e.reason == "RelatedWorkloadsFound"]
        assert notes and f"Pod {second}/helper" in notes[0]
        assert "minerguard.io/quarantined" not in (core.read_namespaced_pod("helper", second).metadata.labels or {})

        def billed(above: float) -> float | None:
            bill = (incident(custom, namespace, "pod-miner").get("status") or {}).get("cost") or {}
            seconds = float(bill.get("cpuCoreSeconds") or 0)
            return seconds if seconds > above and bill["estimate"].endswith(" USD") else None

        first = eventually(lambda: billed(0.0), 60, "a bill for the burning pod")
        eventually(lambda: billed(first + 2), 30, "the bill growing while the pod burns CPU")
        wide = kubectl("get", "minerincident", "pod-miner", "-n", namespace).stdout
        assert "EST. COST" in wide and " USD" in wide

        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "minerincidents", "pod-miner", {"spec": {"release": True}}
        )
        eventually(lambda: incident(custom, namespace, "pod-miner")["status"]["state"] == "Released", 30, "released")
        at_release = incident(custom, namespace, "pod-miner")["status"]["cost"]
        consistently(
            lambda: incident(custom, namespace, "pod-miner")["status"]["cost"] == at_release,
            8,
            "the bill stopped at the release",
        )
    finally:
        core.delete_namespace(second, propagation_policy="Background")


def describe_cli(namespace: str, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minerguard", "incident", "describe", f"{namespace}/{name}",
         "--kubeconfig", str(KUBECONFIG)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_describe_prints_the_events_the_operator_emitted_about_the_incident_and_its_pod(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """The real operator contains a miner; ``minerguard incident describe`` reads its Events back through storage."""
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    core.create_namespaced_pod(namespace, miner_pod("other-miner"))  # its Events are its own incident's
    eventually(
        lambda: (incident(custom, namespace, "pod-miner").get("status") or {}).get("state") == "Contained",
        60,
        "the miner contained",
    )

    def described() -> list[str] | None:
        out = describe_cli(namespace, "pod-miner")
        assert out.returncode == 0, out.stderr
        lines = out.stdout[out.stdout.index("\nEvents:") + 1 :].splitlines()
        reasons = [line.split()[1] for line in lines[3:]]
        return lines if {"MinerDetected", "PodQuarantined"} <= set(reasons) else None

    lines = eventually(described, 30, "the MinerDetected and PodQuarantined Events in the describe output")
    assert lines[1].split() == ["Type", "Reason", "Count", "Age", "Object", "Message"]
    body = lines[3:]
    # The pod's and the incident's own (RelatedWorkloadsFound: other-miner shares the wallet), none of other-miner's.
    assert {line.split()[4] for line in body} <= {"Pod/miner", "MinerIncident/pod-miner"}, body
    detected = next(line for line in body if line.split()[1] == "MinerDetected")
    quarantined = next(line for line in body if line.split()[1] == "PodQuarantined")
    assert body.index(detected) < body.index(quarantined)  # newest last
    assert detected.split()[:3] == ["Warning", "MinerDetected", "1"]
    assert f"matched Pod {namespace}/miner" in detected and f"Incident {namespace}/pod-miner." in detected
    assert quarantined.split()[:3] == ["Warning", "PodQuarantined", "1"]
    assert quarantined.split()[3].endswith("s")  # an age in seconds: it just happened


def test_the_creator_stamp_is_off_by_default_and_the_notes_say_when_the_cluster_cannot_serve_it(
    tmp_path: Path,
) -> None:
    def stamp_kinds(*args: str) -> list[str]:
        return [d["kind"] for d in helm_template(CHART, *args) if d["kind"].startswith("MutatingAdmissionPolicy")]

    served = ("--api-versions", MAP_API)
    assert stamp_kinds(*served) == []  # off by default
    on = ("--set", "creatorStamp.enabled=true")
    assert stamp_kinds(*served, *on) == ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]
    assert "MutatingAdmissionPolicy" not in notes(tmp_path / "served", *template_args(), *served, *on)
    assert stamp_kinds(*on) == []  # the cluster does not serve the API: left out...
    text = notes(tmp_path / "not-served", *template_args(), *on)
    assert "does not serve admissionregistration.k8s.io/v1\nMutatingAdmissionPolicy" in text  # ...and said so
    assert "is NOT installed: incidents name the owner chain and its field managers" in text
    assert "MutatingAdmissionPolicy" not in notes(tmp_path / "off", *template_args())


def test_with_the_creator_stamp_on_an_unmatched_pod_gets_no_write_from_the_operator(
    creator_stamp: None,
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """The stamp is written by admission inside the creating request (the creator's own field manager): then
    nothing more. A miner created after it and contained shows the operator has seen the benign pod."""
    kubectl("create", "rolebinding", "tenant-admin", "--clusterrole=admin", "--user=tenant-admin", "-n", namespace)
    make_policy(namespace)  # the benign pod is in the policy's scope, and matches none of its signals
    benign = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
              "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "command": ["nginx"]}]}}  # fmt: skip
    as_admin = ("--as", "tenant-admin", "-n", namespace)

    def stamped() -> bool:
        args = (*as_admin, "create", "--dry-run=server", "-o", "json", "-f", "-")
        probe = json.loads(kubectl(*args, stdin=json.dumps(benign)).stdout)
        return bool((probe["metadata"].get("annotations") or {}).get("minerguard.io/created-by"))

    eventually(stamped, 30, "the creator stamp in force")
    created = json.loads(kubectl(*as_admin, "create", "-o", "json", "-f", "-", stdin=json.dumps(benign)).stdout)
    assert created["metadata"]["annotations"]["minerguard.io/created-by"] == "tenant-admin"
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(
        lambda: (incident(custom, namespace, "pod-miner").get("status") or {}).get("state") == "Contained",
        60,
        "the miner created after it contained",
    )

    def untouched() -> bool:
        pod = core.read_namespaced_pod("web", namespace).metadata
        managers = {m.manager for m in pod.managed_fields or []}
        return (
            pod.resource_version == created["metadata"]["resourceVersion"]
            and managers <= {"kubectl-create", "kube-scheduler", "kwok"}  # the creator, the scheduler binding it
            and not any(k.startswith("minerguard.io/") and k not in CREATOR_STAMP for k in pod.annotations or {})
            and "minerguard.io/quarantined" not in (pod.labels or {})
        )

    # The scheduler binds it and KWOK runs it (their own writes): wait for those, then nothing more.
    eventually(lambda: core.read_namespaced_pod("web", namespace).status.phase == "Running", 30, "web running")
    created = json.loads(kubectl("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
    consistently(untouched, 6, "no write to the unmatched, stamped pod")
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=web").items
    assert not [e for e in events if e.reporting_component == "minerguard.io/operator"]
