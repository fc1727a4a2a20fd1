"""Enforcement backends on the real apiserver: auto's choice, the admin-tier quarantine, verify, restore, release.

The admin tier's CRDs (AdminNetworkPolicy v1alpha1 as kube-network-policies v0.8.0 serves it,
ClusterNetworkPolicy v1alpha2, CiliumClusterwideNetworkPolicy, Calico's GlobalNetworkPolicy) come from
their Go modules (:mod:`tests.e2e.admin_crds`) and are installed for one test and removed after it, while
the session's operator (which decided its backend without them) is paused. Proof is at the API level:
nothing here enforces these policies on the wire (docs/operations.md says why).

What these tests prove:
- ``auto`` picks networkPolicy without the CRDs, and cilium, calico, AdminNetworkPolicy,
  ClusterNetworkPolicy as they appear (log and ``minerguard_enforcement_backend``);
- with each cluster-wide backend, a miner behind a namespace allow-all is quarantined by the label and
  minerguard's one Deny policy (it exists, selects the label, denies all, outranks the other admin policy),
  the incident says which backend, and the tenant's allow policy is byte-for-byte unchanged;
- an Argo-CD-like loop re-applying tenants' policies (server-side apply, another field manager) is never
  refused and never reopens the pod;
- the Deny policy edited or deleted is restored; with the chart's admission policy, anyone else's change
  to it is refused; release takes the label off and leaves tenants' objects alone.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from minerguard.domain import admintier
from tests.e2e.admin_crds import NAMES, crd_file
from tests.e2e.cluster import helm_template
from tests.e2e.helpers import ROOT, consistently, eventually, kubectl
from tests.e2e.objects import allow_all, incident_in_state, isolation_problems, miner_pod, quarantined
from tests.e2e.operator_proc import OperatorProcess

pytestmark = pytest.mark.e2e

Install = Callable[..., None]
KIND_OF = {
    "anp": admintier.ANP_V1ALPHA1,
    "cnp": admintier.CNP_V1ALPHA2,
    "cilium": admintier.CILIUM_CCNP,
    "calico": admintier.CALICO_CRD,
}


def established(crd: str) -> bool:
    conditions = json.loads(kubectl("get", "crd", crd, "-o", "json").stdout).get("status", {}).get("conditions")
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions or [])


def gone_or_live(crd: str) -> bool:
    """True once no earlier deletion of the CRD is still terminating: a terminating CRD refuses new objects."""
    res = kubectl("get", "crd", crd, "-o", "json", check=False)
    return res.returncode != 0 or "deletionTimestamp" not in json.loads(res.stdout)["metadata"]


@pytest.fixture
def admin_crds(paused_session_operator: None) -> Iterator[Install]:
    """Installs the given backends' CRDs; removes them (and their objects) before the session operator restarts."""
    installed: list[str] = []

    def install(*which: str) -> None:
        for w in which:
            eventually(lambda w=w: gone_or_live(NAMES[w]), 180, f"CRD {NAMES[w]} deleted by an earlier test gone")
            kubectl("apply", "--server-side", "-f", str(crd_file(w)))
            installed.append(NAMES[w])
        for w in which:
            eventually(lambda w=w: established(NAMES[w]), 60, f"CRD {NAMES[w]} Established")

    yield install
    if installed:
        kubectl("delete", "crd", "--wait=false", *installed, check=False)
        for crd in set(installed):
            eventually(lambda crd=crd: kubectl("get", "crd", crd, check=False).returncode != 0, 180, f"CRD {crd} gone")


@pytest.fixture
def start_operator() -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(backend: str = "auto", **env: str) -> OperatorProcess:
        proc = OperatorProcess(f"enforcement-{uuid.uuid4().hex[:6]}", {"MINERGUARD_ENFORCEMENT": backend, **env})
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def backend_metric(proc: OperatorProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics_port}/metrics", timeout=3) as r:
        text = r.read().decode()
    chosen = [
        line.split('backend="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("minerguard_enforcement_backend{") and line.endswith(" 1.0")
    ]
    assert len(chosen) == 1, text
    return chosen[0]


def test_auto_picks_the_backend_the_cluster_serves(admin_crds: Install, start_operator: Any) -> None:
    steps = [
        ((), "networkPolicy", "a deny-all NetworkPolicy per namespace"),
        (("calico",), "calico", "GlobalNetworkPolicy crd.projectcalico.org/v1"),
        (("cilium",), "cilium", "CiliumClusterwideNetworkPolicy cilium.io/v2"),
        (("anp",), "adminNetworkPolicy", "AdminNetworkPolicy policy.networking.k8s.io/v1alpha1"),
        (("cnp",), "adminNetworkPolicy", "ClusterNetworkPolicy policy.networking.k8s.io/v1alpha2"),
    ]
    for crds, backend, told in steps:
        admin_crds(*crds) if crds else None
        proc = start_operator()
        assert backend_metric(proc) == backend, crds
        eventually(lambda p=proc, t=told: t in p.log_tail(20000), 10, f"the log names {told}")
        proc.stop()


def admin_policies(custom: client.CustomObjectsApi, kind: admintier.PolicyKind) -> list[dict[str, Any]]:
    return list(custom.list_cluster_custom_object(kind.group, kind.version, kind.plural)["items"])


def ours(custom: client.CustomObjectsApi, kind: admintier.PolicyKind) -> dict[str, Any] | None:
    return next((p for p in admin_policies(custom, kind) if p["metadata"]["name"] == kind.name), None)


def other_admin_policy(kind: admintier.PolicyKind) -> dict[str, Any]:
    """A platform team's admin policy allowing everything, at a lower precedence than minerguard's."""
    body: dict[str, Any] = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": "platform-allow"}}
    if kind.backend == admintier.ADMIN_NETWORK_POLICY:
        accept = "Accept" if kind is admintier.CNP_V1ALPHA2 else "Allow"
        body["spec"] = {
            "priority": 10,
            "subject": {"namespaces": {}},
            "ingress": [{"name": "all", "action": accept, "from": [{"namespaces": {}}]}],
        }
        if kind is admintier.CNP_V1ALPHA2:
            body["spec"]["tier"] = "Admin"
    elif kind.backend == admintier.CILIUM:
        body["spec"] = {"endpointSelector": {}, "ingress": [{"fromEntities": ["all"]}]}
    else:
        body["metadata"]["name"] = "default.platform-allow"
        body["spec"] = {"order": 10, "selector": "all()", "ingress": [{"action": "Allow"}]}
    return body


def apply_as_gitops(namespace: str, body: dict[str, Any]) -> None:
    """What Argo CD does: server-side apply of the tenant's own manifest, with its own field manager."""
    doc = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
    kubectl("apply", "--server-side", "--field-manager=argocd-controller", "-f", "-", stdin=json.dumps(doc))


@pytest.mark.parametrize("which", ["anp", "cnp", "cilium", "calico"])
def test_admin_tier_quarantine_leaves_tenant_policies_alone(
    which: str,
    admin_crds: Install,
    start_operator: Any,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    kind = KIND_OF[which]
    admin_crds(which)
    custom.create_cluster_custom_object(kind.group, kind.version, kind.plural, other_admin_policy(kind))
    proc = start_operator(kind.backend)
    apply_as_gitops(namespace, allow_all())
    before = networking.read_namespaced_network_policy("allow-all", namespace).to_dict()
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    found = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 60, f"contained ({proc.log_path})")
    assert found["status"]["enforcement"] == kind.backend
    assert quarantined(core, namespace, "miner")
    live = ours(custom, kind)
    assert live is not None and admintier.owned(live)
    assert admintier.problems(kind, live, admin_policies(custom, kind)) == []  # exists, selects, denies, outranks
    assert networking.read_namespaced_network_policy("allow-all", namespace).to_dict() == before  # byte for byte
    assert [p.metadata.name for p in networking.list_namespaced_network_policy(namespace).items] == ["allow-all"]
    assert "minerguard.io/quarantined-pods" not in (core.read_namespace(namespace).metadata.labels or {})

    # Argo CD syncing the tenant's policies in a loop: never refused, never reopening the pod.
    for i in range(8):
        apply_as_gitops(namespace, allow_all())
        apply_as_gitops(namespace, allow_all(f"allow-new-{i % 2}"))
    consistently(
        lambda: quarantined(core, namespace, "miner") and incident_in_state(custom, namespace, "Contained"),
        3,
        "still quarantined after the syncs",
    )
    assert not admintier.problems(kind, ours(custom, kind), admin_policies(custom, kind))

    # Tampering: weakened, then deleted; each time restored by the operator's check.
    rules = "ingressDeny" if kind.backend == admintier.CILIUM else "ingress"
    patch = {"spec": {rules: [{"action": "Pass", "from": [{"namespaces": {}}]}] if rules == "ingress" else []}}
    if kind.backend == admintier.CALICO:
        patch = {"spec": {"ingress": [{"action": "Allow"}]}}
    custom.patch_cluster_custom_object(kind.group, kind.version, kind.plural, kind.name, patch)
    eventually(lambda: not admintier.problems(kind, ours(custom, kind), []), 30, "the edited policy restored")
    custom.delete_cluster_custom_object(kind.group, kind.version, kind.plural, kind.name)
    eventually(lambda: not admintier.problems(kind, ours(custom, kind), []), 30, "the deleted policy restored")

    # Release: the label goes; tenants' objects are as they were.
    name = found["metadata"]["name"]
    custom.patch_namespaced_custom_object(
        "minerguard.io", "v1alpha1", namespace, "minerincidents", name, {"spec": {"release": True, "releasedBy": "t"}}
    )
    eventually(lambda: not quarantined(core, namespace, "miner"), 30, "released")
    after = networking.read_namespaced_network_policy("allow-all", namespace).to_dict()
    assert after["spec"] == before["spec"] and "minerguard" not in json.dumps(after["metadata"].get("annotations"))


def test_only_minerguard_may_change_its_admin_policy(
    admin_crds: Install, start_operator: Any, custom: client.CustomObjectsApi
) -> None:
    """The chart's protect-admin-tier policy: a cluster-wide admin who is not minerguard is refused."""
    kind = admintier.ANP_V1ALPHA1
    admin_crds("anp")
    docs = helm_template(
        ROOT / "helm" / "minerguard",
        "--namespace",
        "minerguard-system",
        "--show-only",
        "templates/admission-admin-tier.yaml",
        "--set",
        "admissionPolicy.exemptUsers={minerguard-admin}",
        "--set-json",
        "admissionPolicy.exemptGroups=[]",
    )
    text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    user = f"netadmin-{uuid.uuid4().hex[:5]}"
    kubectl("apply", "-f", "-", stdin=text)
    kubectl("create", "clusterrolebinding", user, "--clusterrole=cluster-admin", f"--user={user}")
    try:
        start_operator(kind.backend)
        eventually(lambda: ours(custom, kind) is not None, 30, "the Deny policy created")
        patch = json.dumps({"spec": {"priority": 999}})
        cases = [
            ("patch", "adminnetworkpolicy", kind.name, "--type=merge", "-p", patch),
            ("delete", "adminnetworkpolicy", kind.name),
        ]

        def refused(args: tuple[str, ...]) -> bool:
            res = kubectl("--as", user, *args, check=False)
            return res.returncode != 0 and "quarantine policy of minerguard" in res.stderr

        for args in cases:
            eventually(lambda a=args: refused(a), 20, f"{' '.join(args)} refused")  # the policy takes a moment
        # Other admin policies are the cluster admins' own business.
        other = other_admin_policy(kind)
        kubectl("--as", user, "apply", "-f", "-", stdin=json.dumps(other))
        kubectl("--as", user, "delete", "adminnetworkpolicy", "platform-allow")
    finally:
        kubectl("delete", "clusterrolebinding", user, check=False)
        kubectl("delete", "-f", "-", stdin=text, check=False)


# --------------------------------------------------------------------------- the allow-list


def test_the_allow_list_is_accepted_by_each_crd_and_verified_as_stored(
    admin_crds: Install,
    start_operator: Any,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """enforcement.allow (DNS and a forensics namespace): the operator's ClusterNetworkPolicy carries the Accept
    rules ahead of the Deny and verifies as the apiserver stored it; the other kinds' policies with the same
    allow-list pass their CRD's strict validation and verify as the apiserver would store them (dry run)."""
    allow = admintier.AllowList(dns=True, forensics_namespace="forensics")
    admin_crds("cnp", "anp", "cilium", "calico")
    proc = start_operator(
        admintier.ADMIN_NETWORK_POLICY,
        MINERGUARD_ENFORCEMENT_ALLOW_DNS="true",
        MINERGUARD_ENFORCEMENT_ALLOW_NAMESPACE="forensics",
    )
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    found = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 60, f"contained ({proc.log_path})")
    assert found["status"]["enforcement"] == admintier.ADMIN_NETWORK_POLICY
    kind = admintier.CNP_V1ALPHA2
    live = ours(custom, kind)
    assert live is not None and [r["action"] for r in live["spec"]["egress"]] == ["Accept", "Accept", "Deny"]
    assert admintier.problems(kind, live, admin_policies(custom, kind), allow=allow) == []
    assert admintier.problems(kind, live, admin_policies(custom, kind))  # not the plain deny-all
    for other in (admintier.ANP_V1ALPHA1, admintier.CILIUM_CCNP, admintier.CALICO_CRD):
        body = admintier.desired(other, allow=allow)
        stored = custom.create_cluster_custom_object(
            other.group, other.version, other.plural, body, dry_run="All", field_validation="Strict"
        )
        assert admintier.problems(other, stored, [], allow=allow) == [], other.kind


# --------------------------------------------------------------------------- migration between backends


def test_moving_to_the_admin_tier_and_back_removes_the_old_artefacts_only_after_verifying(
    admin_crds: Install,
    start_operator: Any,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """networkPolicy -> adminNetworkPolicy: the deny-all and the exclusion stay while another admin policy
    outranks minerguard's (not verified), and go once it verifies. adminNetworkPolicy -> networkPolicy: the
    old AdminNetworkPolicy is deleted once the quarantine verifies under networkPolicy, and not before."""
    kind = admintier.ANP_V1ALPHA1
    admin_crds("anp")
    networking.create_namespaced_network_policy(namespace, allow_all())
    proc = start_operator(admintier.NETWORK_POLICY)
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 60, f"contained ({proc.log_path})")
    assert isolation_problems(core, networking, namespace, "miner") == []
    proc.stop()

    def artefacts() -> list[str]:
        return [
            p.metadata.name
            for p in networking.list_namespaced_network_policy(namespace).items
            if p.metadata.name == "minerguard-quarantine" or "minerguard" in json.dumps(p.metadata.annotations or {})
        ]

    assert sorted(artefacts()) == ["allow-all", "minerguard-quarantine"]
    # A platform admin policy at priority 0 with an Allow: minerguard's (also 0) does not verify, nothing moves.
    ahead = other_admin_policy(kind)
    ahead["spec"]["priority"] = 0
    custom.create_cluster_custom_object(kind.group, kind.version, kind.plural, ahead)
    proc = start_operator(admintier.ADMIN_NETWORK_POLICY)
    eventually(lambda: ours(custom, kind) is not None, 30, "the Deny policy created")
    consistently(lambda: sorted(artefacts()) == ["allow-all", "minerguard-quarantine"], 12, "nothing moved yet")
    custom.delete_cluster_custom_object(kind.group, kind.version, kind.plural, "platform-allow")
    eventually(lambda: artefacts() == [], 60, f"the deny-all and the exclusion removed ({proc.log_path})")
    assert quarantined(core, namespace, "miner")
    # The namespace mark is taken off last, after the deny-all and the exclusion: wait for it too.
    eventually(
        lambda: "minerguard.io/quarantined-pods" not in (core.read_namespace(namespace).metadata.labels or {}),
        30,
        "the namespace unmarked",
    )
    assert admintier.problems(kind, ours(custom, kind), admin_policies(custom, kind)) == []
    proc.stop()

    # Back to networkPolicy: the AdminNetworkPolicy goes only once the pod verifies under networkPolicy.
    proc = start_operator(admintier.NETWORK_POLICY)

    def old_policy_gone() -> bool:
        if ours(custom, kind) is not None:
            return False
        assert isolation_problems(core, networking, namespace, "miner") == [], "deleted before the pod verified"
        return True

    eventually(old_policy_gone, 60, f"minerguard's AdminNetworkPolicy removed ({proc.log_path})")
    assert quarantined(core, namespace, "miner")
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "still contained")
