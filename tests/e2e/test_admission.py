"""The chart's guard rails on the real apiserver: the admission policy and least-privilege RBAC.

- A namespace admin (edit rights in its own namespace, as an attacker who owns the miner has) is
  refused by the ValidatingAdmissionPolicy when undoing a quarantine; minerguard itself is not.
- The operator, running with the chart's ServiceAccount and ClusterRole, does its whole job, and
  that account cannot read Secrets, exec into pods or change RBAC.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from minerguard.domain import netpol
from minerguard.rbac import required_rules
from tests.e2e.cluster import helm_template
from tests.e2e.helpers import CLUSTER_DIR, ROOT, eventually, kubectl
from tests.e2e.objects import incident_in_state, miner_pod, network_policy, quarantined
from tests.e2e.operator_proc import OperatorProcess

CHART = ROOT / "helm" / "minerguard"


def render(*args: str) -> list[dict[str, Any]]:
    return helm_template(CHART, *args)


@pytest.fixture
def admission_policy() -> Iterator[None]:
    # The local operator authenticates as minerguard-admin (client certificate), not as a ServiceAccount.
    docs = render(
        "--namespace",
        "minerguard-system",
        "--show-only",
        "templates/admission-policy.yaml",
        "--set",
        "admissionPolicy.exemptUsers={minerguard-admin}",
    )
    text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    kubectl("apply", "-f", "-", stdin=text)
    yield
    kubectl("delete", "-f", "-", stdin=text, check=False)


def as_user(user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return kubectl("--as", user, *args, check=False)


def test_namespace_admin_cannot_undo_a_quarantine(
    admission_policy: None,
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    networking: client.NetworkingV1Api,
    namespace: str,
    make_policy: Any,
) -> None:
    kubectl("create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice", "-n", namespace)
    make_policy(namespace)
    networking.create_namespaced_network_policy(
        namespace,
        network_policy("allow-web", {"podSelector": {}, "ingress": [{}]}),
    )
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "the miner contained")

    def refused(*args: str) -> str:
        res = as_user("alice", "-n", namespace, *args)
        assert res.returncode != 0, f"alice was allowed: {' '.join(args)}"
        return res.stderr

    # The policy takes effect once the apiserver has loaded it: wait for the first refusal.
    message = eventually(
        lambda: (
            (r := as_user("alice", "-n", namespace, "label", "pod", "miner", f"{netpol.QUARANTINE_LABEL}-")).returncode
            != 0
            and r.stderr
        ),
        30,
        "the admission policy to refuse alice",
    )
    assert "managed by minerguard" in message
    assert "managed by minerguard" in refused("label", "--overwrite", "pod", "miner", f"{netpol.QUARANTINE_LABEL}=no")
    assert "managed by minerguard" in refused("delete", "networkpolicy", netpol.QUARANTINE_POLICY)
    assert "managed by minerguard" in refused(
        "patch", "networkpolicy", netpol.QUARANTINE_POLICY, "--type", "merge", "-p", '{"spec": {"egress": [{}]}}'
    )
    assert "cannot be removed" in refused(
        "patch",
        "networkpolicy",
        "allow-web",
        "--type",
        "json",
        "-p",
        '[{"op": "remove", "path": "/spec/podSelector/matchExpressions"}]',
    )
    # Ordinary edits by alice still work: the policy only guards the quarantine.
    assert as_user("alice", "-n", namespace, "label", "pod", "miner", "team=blue").returncode == 0
    assert quarantined(core, namespace, "miner")

    # minerguard itself may release: the label comes off through the incident.
    kubectl(
        "patch", "minerincident", "pod-miner", "-n", namespace, "--type", "merge", "-p", '{"spec": {"release": true}}'
    )
    eventually(lambda: not quarantined(core, namespace, "miner"), 30, "release by minerguard passes admission")


@pytest.fixture
def operator_account(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """The chart's ServiceAccount, ClusterRole and binding in a fresh namespace, and a kubeconfig with its token.

    Parametrized indirectly, the parameter is a list of chart values (``key=value``) to render them with."""
    namespace = f"minerguard-lp-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", namespace)
    values = [arg for kv in getattr(request, "param", ()) for arg in ("--set", kv)]
    docs = render(
        "--namespace",
        namespace,
        *values,
        "--set",
        "fullnameOverride=mg-lp",
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/clusterrole.yaml",
        "--show-only",
        "templates/clusterrolebinding.yaml",
    )
    text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    kubectl("apply", "-f", "-", stdin=text)
    sa = next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
    token = kubectl("create", "token", sa, "-n", namespace, "--duration", "2h").stdout.strip()
    ports = json.loads((CLUSTER_DIR / "ports.json").read_text())
    ca = base64.b64encode((CLUSTER_DIR / "pki" / "ca.crt").read_bytes()).decode()
    kubeconfig = CLUSTER_DIR / f"kubeconfig-{namespace}"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "sa",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": f"https://127.0.0.1:{ports['apiserver']}",
                            "certificate-authority-data": ca,
                        },
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
            }
        )
    )
    yield f"system:serviceaccount:{namespace}:{sa}", kubeconfig
    kubectl("delete", "-f", "-", stdin=text, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    kubeconfig.unlink(missing_ok=True)


def access_review(user: str, group: str, resource: str, verb: str) -> bool:
    base, _, sub = resource.partition("/")
    attributes = {"group": group, "resource": base, "subresource": sub, "verb": verb}
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": attributes,
        },
    }
    res = kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review))
    return bool(json.loads(res.stdout)["status"].get("allowed"))


def can_i(user: str, verb: str, resource: str, *extra: str) -> bool:
    res = kubectl("auth", "can-i", verb, resource, "--as", user, *extra, check=False)
    return res.stdout.strip() == "yes"


def test_operator_account_has_exactly_what_the_code_needs(
    operator_account: tuple[str, Path],
    paused_session_operator: None,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    user, kubeconfig = operator_account
    for group, resource, verb in sorted(required_rules()):
        # A SubjectAccessReview, as `kubectl auth can-i` makes, but without discovery: the admin-tier
        # policy resources of the enforcement backends are granted whether or not their CRDs are served.
        assert access_review(user, group, resource, verb), f"{user} cannot {verb} {resource} in {group!r}"
    for verb, resource in [
        ("get", "secrets"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("create", "pods/exec"),
        ("create", "pods/attach"),
        ("create", "clusterroles"),
        ("update", "clusterroles"),
        ("escalate", "clusterroles"),
        ("bind", "clusterroles"),
        ("create", "rolebindings"),
        ("create", "clusterrolebindings"),
        ("create", "pods"),
        ("update", "minerpolicies.minerguard.io"),
        ("delete", "nodes"),
        ("impersonate", "users"),
    ]:
        name, *sub = resource.split(" ")
        assert not can_i(user, verb, name, "-A", *sub), f"{user} can {verb} {resource}"

    restricted = OperatorProcess("operator-sa", extra_env={"KUBECONFIG": str(kubeconfig)})
    start = restricted.log_size()
    restricted.start()
    try:
        make_policy(namespace)
        core.create_namespaced_pod(namespace, miner_pod("miner"))
        eventually(
            lambda: incident_in_state(custom, namespace, "Contained"), 30, "contained by the restricted operator"
        )
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=miner").items
        assert {"MinerDetected", "PodQuarantined"} <= {e.reason for e in events}
        log = restricted.log_since(start)
        assert "Forbidden" not in log and " 403" not in log, log[-2000:]
    finally:
        restricted.stop()


def test_a_namespace_with_a_quarantine_can_still_be_deleted(
    admission_policy: None,
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    make_policy: Any,
) -> None:
    namespace = f"doomed-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", namespace)
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "the miner contained")
    kubectl("delete", "namespace", namespace, "--wait=false")
    eventually(
        lambda: namespace not in {n.metadata.name for n in core.list_namespace().items},
        90,
        "the namespace controller deletes the quarantine policy and the namespace goes away",
    )
