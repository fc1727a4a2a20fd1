"""Unit tests for the enforcement backends: choosing one, the cluster-wide Deny of each, verify, restore, migrate.

What these tests prove: ``auto`` picks the first served backend in the documented order (ClusterNetworkPolicy
before AdminNetworkPolicy, Calico's API before its CRD) and falls back to networkPolicy; a named backend that
is not served is an error; each backend's policy verifies as built, and each kind of damage (deleted, subject
changed, a rule weakened, priority lowered, ownerReferences added, another admin policy with an Allow at
our rank) is found and, where it is ours, repaired; the quarantine action with an admin-tier backend only
labels the pod (zero writes to NetworkPolicies or namespaces), verifies, releases, and moves a quarantine
made by the networkPolicy backend only after the new policy verifies.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minerguard.actions import ACTIONS
from minerguard.actions.base import Outcome
from minerguard.actions.enforcement import Enforcement
from minerguard.domain import admintier, netpol
from minerguard.domain.admintier import KINDS, choose
from tests.fakes import FakeStorage, json_patch
from tests.unit.test_actions import NS, context

pytestmark = pytest.mark.unit

ANP, CNP = admintier.ANP_V1ALPHA1, admintier.CNP_V1ALPHA2


def served(*kinds: admintier.PolicyKind) -> set[str]:
    return {k.served_key for k in kinds}


@pytest.mark.parametrize(
    ("available", "backend", "kind"),
    [
        ((), admintier.NETWORK_POLICY, None),
        ((ANP,), admintier.ADMIN_NETWORK_POLICY, ANP),
        ((ANP, CNP), admintier.ADMIN_NETWORK_POLICY, CNP),
        ((admintier.CALICO_CRD, admintier.CILIUM_CCNP), admintier.CILIUM, admintier.CILIUM_CCNP),
        ((admintier.CALICO_CRD,), admintier.CALICO, admintier.CALICO_CRD),
        ((admintier.CALICO_CRD, admintier.CALICO_V3), admintier.CALICO, admintier.CALICO_V3),
        ((admintier.CALICO_V3, ANP), admintier.ADMIN_NETWORK_POLICY, ANP),
    ],
)
def test_auto_takes_the_first_served_backend(
    available: tuple[admintier.PolicyKind, ...], backend: str, kind: admintier.PolicyKind | None
) -> None:
    choice = choose(admintier.AUTO, served(*available))
    assert (choice.backend, choice.kind) == (backend, kind)


def test_a_named_backend_must_be_served() -> None:
    assert choose(admintier.CILIUM, served(admintier.CILIUM_CCNP, ANP)).kind == admintier.CILIUM_CCNP
    assert choose(admintier.NETWORK_POLICY, served(ANP)).kind is None
    with pytest.raises(ValueError, match="does not serve"):
        choose(admintier.CALICO, served(ANP))
    with pytest.raises(ValueError, match="not one of"):
        choose("iptables", served(ANP))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.kind}-{k.version}")
def test_each_policy_verifies_as_built_and_damage_is_found(kind: admintier.PolicyKind) -> None:
    built = admintier.desired(kind)
    assert admintier.problems(kind, built, [built]) == []
    assert admintier.owned(built)
    assert admintier.problems(kind, None, []) == [f"{kind.kind} {kind.name} does not exist"]
    damaged = copy.deepcopy(built)
    selector = {ADMIN: "subject", "cilium": "endpointSelector", "calico": "selector"}[kind.backend]
    damaged["spec"][selector] = {"namespaces": {}} if kind.backend == ADMIN else "app == 'x'"
    if kind.backend == "cilium":
        damaged["spec"][selector] = {"matchLabels": {"app": "x"}}
    assert any("does not select" in p for p in admintier.problems(kind, damaged, []))
    weakened = copy.deepcopy(built)
    rules = "ingressDeny" if kind.backend == "cilium" else "ingress"
    weakened["spec"][rules] = []
    assert any("is not minerguard's deny-all" in p for p in admintier.problems(kind, weakened, []))
    taken = copy.deepcopy(damaged)
    taken["metadata"]["ownerReferences"] = [{"kind": "ConfigMap", "name": "x"}]
    taken["metadata"]["labels"] = {}
    assert not admintier.owned(taken)
    repaired = json_patch(copy.deepcopy(taken), admintier.repair(kind, taken, 0, True))
    assert admintier.problems(kind, repaired, []) == [] and admintier.owned(repaired)


ADMIN = admintier.ADMIN_NETWORK_POLICY


@pytest.mark.parametrize("kind", [ANP, CNP, admintier.CALICO_CRD], ids=lambda k: k.kind)
def test_another_policy_allowing_at_our_rank_outranks_it(kind: admintier.PolicyKind) -> None:
    ours = admintier.desired(kind, priority=3)
    allow = "Accept" if kind is CNP else "Allow"
    rank = "order" if kind.backend == "calico" else "priority"

    def other(value: int, action: str) -> dict[str, Any]:
        spec: dict[str, Any] = {rank: value, "ingress": [{"action": action}]}
        if kind is CNP:
            spec["tier"] = "Admin"
        return {"metadata": {"name": f"tenant-{value}-{action}"}, "spec": spec}

    assert admintier.problems(kind, ours, [ours, other(4, allow), other(2, "Deny")], priority=3) == []
    found = admintier.problems(kind, ours, [ours, other(3, allow), other(1, "Pass")], priority=3)
    assert found and f"tenant-1-Pass, tenant-3-{allow}" in found[0]
    if kind is CNP:
        baseline = other(0, allow)
        baseline["spec"]["tier"] = "Baseline"
        assert admintier.problems(kind, ours, [ours, baseline], priority=3) == []


def test_cilium_deny_is_never_outranked() -> None:
    ours = admintier.desired(admintier.CILIUM_CCNP)
    allow_all = {"metadata": {"name": "allow"}, "spec": {"endpointSelector": {}, "ingress": [{}]}}
    assert admintier.problems(admintier.CILIUM_CCNP, ours, [allow_all]) == []


def test_the_standard_channel_of_anp_has_no_networks_peer() -> None:
    assert admintier.has_external_deny(admintier.desired(ANP))
    standard = admintier.desired(ANP, external=False)
    assert not admintier.has_external_deny(standard)
    assert admintier.problems(ANP, standard, [], external=False) == []
    assert admintier.problems(ANP, standard, [], external=True)


# ------------------------------------------------------------------ the quarantine action with a backend


def admin_storage(*kinds: admintier.PolicyKind) -> FakeStorage:
    fake = FakeStorage()
    fake.served = frozenset(served(*kinds))
    return fake


def allow_all(name: str = "allow-all") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]},
    }


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.kind}-{k.version}")
def test_quarantine_with_a_cluster_wide_backend_touches_no_tenant_object(kind: admintier.PolicyKind) -> None:
    storage = admin_storage(kind)
    tenant = storage.put("NetworkPolicy", allow_all())
    enforcement = Enforcement(choose(kind.backend, storage.served_resources({kind.api_version})))
    assert enforcement.kind == kind
    ctx = context(storage, enforcement=enforcement)
    result = ACTIONS["quarantine"].run(ctx)
    assert result.result == Outcome.SUCCEEDED, result.message
    assert ctx.pod["metadata"]["labels"][netpol.QUARANTINE_LABEL] == "true"
    assert storage.objects[("NetworkPolicy", NS, "allow-all")] == tenant  # byte for byte
    assert {r for (v, r) in storage.calls if v != "get" and v != "list"} == {"Pod", kind.kind}
    assert ("create", kind.kind) in storage.calls
    # Idempotent: a second run writes nothing.
    before = sum(n for (v, _), n in storage.calls.items() if v not in ("get", "list"))
    again = ACTIONS["quarantine"].run(ctx)
    assert again.result == Outcome.SUCCEEDED and not again.changed
    assert sum(n for (v, _), n in storage.calls.items() if v not in ("get", "list")) == before
    # Tampering: the policy edited, then deleted; each time restored and told.
    key = (kind.served_key, "", kind.name)
    rules = "ingressDeny" if kind.backend == "cilium" else "ingress"
    storage.objects[key]["spec"][rules] = []
    assert ACTIONS["quarantine"].verify(ctx)
    ctx.previously_contained = True
    restored = ACTIONS["quarantine"].run(ctx)
    assert restored.result == Outcome.SUCCEEDED and "was edited" in restored.tampered
    del storage.objects[key]
    assert enforcement.maintain(storage) == "created" and enforcement.restored == 1  # type: ignore[arg-type]
    # Release: the label goes, the cluster-wide policy stays (it selects nobody else), tenants untouched.
    released = ACTIONS["quarantine"].revert(ctx)
    assert released.result == Outcome.SUCCEEDED
    assert netpol.QUARANTINE_LABEL not in storage.objects[("Pod", NS, "miner")]["metadata"]["labels"]
    assert storage.objects[("NetworkPolicy", NS, "allow-all")] == tenant
    assert ("patch", "Namespace") not in storage.calls and ("list", "Pod") not in storage.calls


def test_a_quarantine_of_the_network_policy_backend_moves_after_the_new_one_verifies() -> None:
    storage = admin_storage(CNP)
    storage.put("NetworkPolicy", allow_all())
    old = context(storage)
    assert ACTIONS["quarantine"].run(old).result == Outcome.SUCCEEDED
    assert ("NetworkPolicy", NS, netpol.QUARANTINE_POLICY) in storage.objects
    assert netpol.has_exclusion(storage.objects[("NetworkPolicy", NS, "allow-all")])
    # The operator restarts with the admin tier; the new policy is outranked first: nothing is moved.
    other = {"metadata": {"name": "allow-first"}, "spec": {"tier": "Admin", "priority": 0, "ingress": [{}]}}
    storage.put(CNP.served_key, other)
    enforcement = Enforcement(choose(admintier.AUTO, storage.served))
    ctx = context(storage, enforcement=enforcement)
    ctx.pod = storage.objects[("Pod", NS, "miner")]
    failed = ACTIONS["quarantine"].run(ctx)
    assert failed.result == Outcome.FAILED and "allow-first" in failed.message
    assert ("NetworkPolicy", NS, netpol.QUARANTINE_POLICY) in storage.objects
    del storage.objects[(CNP.served_key, "", "allow-first")]
    moved = ACTIONS["quarantine"].run(ctx)
    assert moved.result == Outcome.SUCCEEDED, moved.message
    assert ("NetworkPolicy", NS, netpol.QUARANTINE_POLICY) not in storage.objects
    assert not netpol.has_exclusion(storage.objects[("NetworkPolicy", NS, "allow-all")])


def test_moving_between_admin_tier_backends_removes_only_minerguards_old_policy() -> None:
    storage = admin_storage(ANP, admintier.CILIUM_CCNP)
    old = Enforcement(choose(admintier.CILIUM, storage.served))
    old.ensure(storage)  # type: ignore[arg-type]
    foreign = admintier.desired(ANP)
    foreign["metadata"]["labels"] = {}
    storage.put(ANP.served_key, foreign | {"metadata": {**foreign["metadata"], "name": "someone-elses"}})
    new = Enforcement(choose(admintier.AUTO, storage.served))
    assert new.kind == ANP
    new.ensure(storage)  # type: ignore[arg-type]
    assert new.remove_others(storage, storage.served) == ["CiliumClusterwideNetworkPolicy"]  # type: ignore[arg-type]
    assert (ANP.served_key, "", "someone-elses") in storage.objects


def test_the_service_decides_reports_and_restores() -> None:
    """Decided from discovery at start, told once in a Normal Event on the peering object; a deleted policy is
    recreated and told as tampering, the first creation is not."""
    from dataclasses import replace

    from minerguard import observability
    from minerguard.config import Settings
    from minerguard.services.enforcement import EnforcementService
    from minerguard.services.events import Events

    storage = admin_storage(ANP)
    settings = replace(Settings(), peering="minerguard")
    service = EnforcementService(storage, settings, Events(storage))  # type: ignore[arg-type]
    assert service.decide().kind == ANP
    assert observability.ENFORCEMENT_BACKEND.labels(admintier.ADMIN_NETWORK_POLICY)._value.get() == 1
    assert observability.ENFORCEMENT_BACKEND.labels(admintier.NETWORK_POLICY)._value.get() == 0
    service.maintain()
    service.maintain()
    assert storage.reasons() == ["EnforcementBackend"]
    told = storage.events[0]
    assert told["regarding"]["kind"] == "ClusterKopfPeering" and told["type"] == "Normal"
    assert "AdminNetworkPolicy policy.networking.k8s.io/v1alpha1" in told["note"]
    del storage.objects[(ANP.served_key, "", ANP.name)]
    service.maintain()
    assert storage.reasons() == ["EnforcementBackend", "QuarantineRestored"]
    assert (ANP.served_key, "", ANP.name) in storage.objects


# ---------------------------------------------------------- the allow-list (issue 19: DNS, a forensics namespace)

ALLOW = admintier.AllowList(dns=True, forensics_namespace="forensics")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.kind}-{k.version}")
def test_the_allow_list_is_rendered_and_verify_accepts_exactly_that_shape(kind: admintier.PolicyKind) -> None:
    """Off by default; configured, the policy verifies with it and only with it: the plain deny-all, a broader
    allow or an allow-list of another namespace is found and repaired."""
    plain = admintier.desired(kind)
    built = admintier.desired(kind, allow=ALLOW)
    assert built["spec"] != plain["spec"]
    assert admintier.problems(kind, built, [built], allow=ALLOW) == []
    assert admintier.problems(kind, plain, [plain], allow=ALLOW)  # configured but missing
    assert admintier.problems(kind, built, [built])  # present but not configured
    other = admintier.desired(kind, allow=admintier.AllowList(forensics_namespace="mallory"))
    assert admintier.problems(kind, other, [other], allow=ALLOW)
    for only in (admintier.AllowList(dns=True), admintier.AllowList(forensics_namespace="forensics")):
        one = admintier.desired(kind, allow=only)
        assert admintier.problems(kind, one, [one], allow=only) == []
        assert admintier.problems(kind, one, [one], allow=ALLOW)
    broader = copy.deepcopy(built)
    key = "egress"
    rule = {"toEntities": ["world"]} if kind.backend == "cilium" else {"action": "Allow"}
    if kind.backend == ADMIN:
        rule = {"name": "x", "action": "Accept" if kind is CNP else "Allow", "to": [{"namespaces": {}}]}
    broader["spec"][key] = [rule, *broader["spec"].get(key, [])]
    assert any("is not minerguard's deny-all" in p for p in admintier.problems(kind, broader, [], allow=ALLOW))
    repaired = json_patch(copy.deepcopy(broader), admintier.repair(kind, broader, 0, True, ALLOW))
    assert admintier.problems(kind, repaired, [], allow=ALLOW) == []


@pytest.mark.parametrize("kind", [ANP, CNP, admintier.CALICO_CRD], ids=lambda k: k.kind)
def test_allow_rules_come_before_the_deny_and_name_only_dns_and_the_namespace(kind: admintier.PolicyKind) -> None:
    spec = admintier.desired(kind, allow=ALLOW)["spec"]
    for direction in ("ingress", "egress"):
        rules = spec[direction]
        assert rules[-1]["action"] == "Deny" and all(r["action"] != "Deny" for r in rules[:-1])
    text = repr(spec["egress"][:-1])
    assert "kube-dns" in text and "53" in text and "forensics" in text
    assert "forensics" in repr(spec["ingress"][:-1]) and "kube-dns" not in repr(spec["ingress"])
    if kind.backend == ADMIN:
        dns = spec["egress"][0]
        ports = dns.get("ports") or dns.get("protocols")
        assert len(ports) == 2  # UDP and TCP, nothing else


def test_cilium_narrows_its_deny_instead_of_allowing_ahead_of_it() -> None:
    """Cilium's deny beats every allow, its own too: the Deny must leave out kube-dns:53 and the namespace."""
    spec = admintier.desired(admintier.CILIUM_CCNP, allow=ALLOW)["spec"]
    assert {"toEntities": ["all"]} not in spec["egressDeny"] and {"fromEntities": ["all"]} not in spec["ingressDeny"]
    assert spec["egressDeny"][0]["toEntities"] == list(admintier.CILIUM_NON_POD_ENTITIES)
    not_in = spec["egressDeny"][1]["toEndpoints"][0]["matchExpressions"][0]
    assert not_in["operator"] == "NotIn" and not_in["values"] == ["forensics", "kube-system"]
    assert [p["port"] for p in spec["egressDeny"][3]["toPorts"][0]["ports"]] == ["1", "54"]  # every port but 53
    assert spec["egress"][0]["toPorts"][0]["ports"] == [{"port": "53", "protocol": p} for p in ("UDP", "TCP")]
    dns_only = admintier.desired(admintier.CILIUM_CCNP, allow=admintier.AllowList(dns=True))["spec"]
    assert dns_only["ingressDeny"][1] == {"fromEndpoints": [{}]}  # no ingress exception without the namespace


def test_the_quarantine_action_enforces_the_configured_allow_list() -> None:
    storage = admin_storage(ANP)
    enforcement = Enforcement(choose(ADMIN, storage.served), allow=ALLOW)
    ctx = context(storage, enforcement=enforcement)
    assert ACTIONS["quarantine"].run(ctx).result == Outcome.SUCCEEDED
    live = storage.objects[(ANP.served_key, "", ANP.name)]
    assert live["spec"]["egress"][0]["name"] == "minerguard-allow-dns"
    live["spec"]["egress"].insert(0, {"name": "open", "action": "Allow", "to": [{"namespaces": {}}]})
    assert ACTIONS["quarantine"].verify(ctx)
    assert enforcement.maintain(storage) == "restored"  # type: ignore[arg-type]
    assert storage.objects[(ANP.served_key, "", ANP.name)]["spec"]["egress"][0]["name"] == "minerguard-allow-dns"


# ------------------------------------------------------------------ back from the admin tier to networkPolicy


def test_going_back_to_network_policy_removes_the_old_policy_only_once_every_pod_verifies() -> None:
    from dataclasses import replace

    from minerguard.config import Settings
    from minerguard.services.enforcement import EnforcementService
    from minerguard.services.events import Events

    storage = admin_storage(ANP)
    storage.put("NetworkPolicy", allow_all())
    old = Enforcement(choose(ADMIN, storage.served))
    ctx = context(storage, enforcement=old)
    assert ACTIONS["quarantine"].run(ctx).result == Outcome.SUCCEEDED
    settings = replace(Settings(), enforcement=admintier.NETWORK_POLICY)
    service = EnforcementService(storage, settings, Events(storage))  # type: ignore[arg-type]
    assert service.decide().kind is None
    service.maintain()  # the quarantined pod does not verify under networkPolicy yet: the old Deny stays
    assert (ANP.served_key, "", ANP.name) in storage.objects and not service.migrated
    moved = context(storage, enforcement=service.enforcement)
    moved.pod = storage.objects[("Pod", NS, "miner")]
    assert ACTIONS["quarantine"].run(moved).result == Outcome.SUCCEEDED  # deny-all and exclusion, verified
    service.maintain()
    assert (ANP.served_key, "", ANP.name) not in storage.objects and service.migrated
    writes = {r for (v, r) in storage.calls if v == "delete"}
    assert writes == {ANP.kind}
