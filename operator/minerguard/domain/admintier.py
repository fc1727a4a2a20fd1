"""Pure reasoning about quarantine enforcement backends: which one, and the cluster-wide deny policy of each.

NetworkPolicies are additive, so the ``networkPolicy`` backend (:mod:`minerguard.domain.netpol`) has to
take quarantined pods out of every tenant policy. The admin tier of network policy has explicit Deny that
outranks every namespace NetworkPolicy, so the other backends need one cluster-scoped object owned by
minerguard, selecting pods labelled ``minerguard.io/quarantined=true`` in every namespace, denying all their
ingress and egress, and no tenant object is touched:

- ``adminNetworkPolicy``: ``policy.networking.k8s.io`` AdminNetworkPolicy ``v1alpha1`` (network-policy-api
  v0.1.x, served by kube-network-policies v0.8.0, Calico, Antrea, OVN-Kubernetes) or the newer
  ClusterNetworkPolicy ``v1alpha2`` (network-policy-api v0.3.0, tier Admin), whichever discovery lists;
- ``cilium``: CiliumClusterwideNetworkPolicy with ``ingressDeny``/``egressDeny`` (Cilium's deny rules
  win over every allow, whatever selects the pod);
- ``calico``: GlobalNetworkPolicy with ``action: Deny`` at the lowest ``order`` (``projectcalico.org/v3``
  when Calico's API server serves it, else its ``crd.projectcalico.org/v1`` CRD).

:func:`choose` decides the backend once at start from the served resources; :func:`desired` builds the
object; :func:`problems` reads one back (with the other policies of its kind) and says why the quarantined
pods would not be isolated by it: missing, not selecting the label, not denying everything, or outranked.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

QUARANTINE_LABEL = "minerguard.io/quarantined"
POLICY_NAME = "minerguard-quarantine"
MANAGED_BY = {"app.kubernetes.io/managed-by": "minerguard", "app.kubernetes.io/part-of": "minerguard"}
ALL_NETWORKS = ("0.0.0.0/0", "::/0")

ADMIN_NETWORK_POLICY = "adminNetworkPolicy"
CILIUM = "cilium"
CALICO = "calico"
NETWORK_POLICY = "networkPolicy"
AUTO = "auto"
BACKENDS = (ADMIN_NETWORK_POLICY, CILIUM, CALICO, NETWORK_POLICY)
"""In the order ``auto`` tries them: the admin tier first, the portable fallback last."""
CHOICES = (AUTO, *BACKENDS)


@dataclass(frozen=True)
class PolicyKind:
    """One cluster-scoped policy resource a backend writes."""

    backend: str
    group: str
    version: str
    plural: str
    kind: str
    name: str = POLICY_NAME

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def served_key(self) -> str:
        """How discovery lists it: ``group/version/plural``."""
        return f"{self.group}/{self.version}/{self.plural}"


ANP_V1ALPHA1 = PolicyKind(
    ADMIN_NETWORK_POLICY, "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", "AdminNetworkPolicy"
)
CNP_V1ALPHA2 = PolicyKind(
    ADMIN_NETWORK_POLICY, "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", "ClusterNetworkPolicy"
)
CILIUM_CCNP = PolicyKind(
    CILIUM, "cilium.io", "v2", "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy"
)
CALICO_V3 = PolicyKind(CALICO, "projectcalico.org", "v3", "globalnetworkpolicies", "GlobalNetworkPolicy")
# Calico's own CRD stores policies of the default tier as "default.<name>".
CALICO_CRD = PolicyKind(
    CALICO, "crd.projectcalico.org", "v1", "globalnetworkpolicies", "GlobalNetworkPolicy", f"default.{POLICY_NAME}"
)
KINDS = (CNP_V1ALPHA2, ANP_V1ALPHA1, CILIUM_CCNP, CALICO_V3, CALICO_CRD)
"""Every policy kind, the preferred version of a backend first (ClusterNetworkPolicy replaces ANP)."""


DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Cilium: every entity outside the cluster's pods, denied one by one once "all" cannot be (an allow-list).
CILIUM_NON_POD_ENTITIES = (
    "world", "host", "remote-node", "kube-apiserver", "ingress", "health", "init", "unmanaged",
)  # fmt: skip


@dataclass(frozen=True)
class AllowList:
    """What the cluster-wide Deny still lets quarantined pods reach; nothing by default.

    ``dns``: egress to the cluster DNS (pods ``k8s-app=kube-dns`` in kube-system) on port 53, UDP and TCP, so a
    quarantined pod's resolver calls show up in the DNS logs instead of timing out (DNS is also a tunnel: off by
    default). ``forensics_namespace``: ingress from and egress to the pods of that one namespace, where
    responders run their collectors.
    """

    dns: bool = False
    forensics_namespace: str = ""

    def __post_init__(self) -> None:
        ns = self.forensics_namespace
        if ns and not _DNS_LABEL.match(ns):
            raise ValueError(f"the forensics namespace {ns!r} is not a namespace name")
        if ns == DNS_NAMESPACE:
            raise ValueError("the forensics namespace must be one of its own, not kube-system")

    def __bool__(self) -> bool:
        return self.dns or bool(self.forensics_namespace)


NO_ALLOW = AllowList()


@dataclass(frozen=True)
class Choice:
    """The backend decided at start, the kind it writes (None for networkPolicy) and why."""

    backend: str
    kind: PolicyKind | None
    reason: str


def choose(wanted: str, served: Collection[str]) -> Choice:
    """The backend for setting ``wanted`` given the ``group/version/plural`` keys discovery lists.

    ``auto`` takes the first backend of :data:`BACKENDS` whose resource is served. A named backend whose
    resource is not served is an error: the operator must not pretend to quarantine with it.
    """
    if wanted not in CHOICES:
        raise ValueError(f"enforcement backend {wanted!r} is not one of {', '.join(CHOICES)}")
    if wanted == NETWORK_POLICY:
        return Choice(NETWORK_POLICY, None, "set explicitly")
    candidates = BACKENDS[:-1] if wanted == AUTO else (wanted,)
    for backend in candidates:
        kind = next((k for k in KINDS if k.backend == backend and k.served_key in served), None)
        if kind is not None:
            how = "the first one served" if wanted == AUTO else "set explicitly"
            return Choice(backend, kind, f"{how}: {kind.kind} {kind.api_version}")
    if wanted == AUTO:
        return Choice(NETWORK_POLICY, None, "no admin-tier, Cilium or Calico policy resource is served")
    wanted_kinds = ", ".join(f"{k.kind} {k.api_version}" for k in KINDS if k.backend == wanted)
    raise ValueError(f"enforcement backend {wanted} needs {wanted_kinds}, which this cluster does not serve")


def _quarantined_pods_anp() -> dict[str, Any]:
    return {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {QUARANTINE_LABEL: "true"}}}}


def _ns(name: str) -> dict[str, Any]:
    return {"matchLabels": {NAMESPACE_NAME_LABEL: name}}


def _admin_allows(kind: PolicyKind, allow: AllowList) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The admin tier's Allow (v1alpha2: Accept) rules, placed before the Deny: in one policy the first match wins."""
    accept = "Accept" if kind is CNP_V1ALPHA2 else "Allow"
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    if allow.dns:
        dns_pods = {"pods": {"namespaceSelector": _ns(DNS_NAMESPACE), "podSelector": {"matchLabels": DNS_POD_LABELS}}}
        rule: dict[str, Any] = {"name": "minerguard-allow-dns", "action": accept, "to": [dns_pods]}
        if kind is CNP_V1ALPHA2:
            rule["protocols"] = [{p: {"destinationPort": {"number": 53}}} for p in ("udp", "tcp")]
        else:
            rule["ports"] = [{"portNumber": {"protocol": p, "port": 53}} for p in ("UDP", "TCP")]
        egress.append(rule)
    if allow.forensics_namespace:
        peer = {"namespaces": _ns(allow.forensics_namespace)}
        ingress.append({"name": "minerguard-allow-forensics", "action": accept, "from": [peer]})
        egress.append({"name": "minerguard-allow-forensics", "action": accept, "to": [peer]})
    return ingress, egress


def _cilium_spec(allow: AllowList) -> dict[str, Any]:
    """Cilium's deny rules win over every allow, its own too: with an allow-list the Deny names what it denies (every
    non-pod entity, the pods of every other namespace, kube-system's other pods and kube-dns' other ports) and
    the explicit allows go in ``ingress``/``egress``."""
    selector = {"matchLabels": {QUARANTINE_LABEL: "true"}}
    if not allow:
        return {
            "endpointSelector": selector,
            "ingressDeny": [{"fromEntities": ["all"]}],
            "egressDeny": [{"toEntities": ["all"]}],
        }
    ns_key = "k8s:io.kubernetes.pod.namespace"
    forensics = [allow.forensics_namespace] if allow.forensics_namespace else []
    egress_ok = sorted([DNS_NAMESPACE, *forensics] if allow.dns else forensics)
    entities = list(CILIUM_NON_POD_ENTITIES)
    ingress_deny: list[dict[str, Any]] = [{"fromEntities": entities}]
    ingress_deny.append(
        {"fromEndpoints": [{"matchExpressions": [{"key": ns_key, "operator": "NotIn", "values": forensics}]}]}
        if forensics
        else {"fromEndpoints": [{}]}
    )
    egress_deny: list[dict[str, Any]] = [{"toEntities": entities}]
    egress_deny.append(
        {"toEndpoints": [{"matchExpressions": [{"key": ns_key, "operator": "NotIn", "values": egress_ok}]}]}
        if egress_ok
        else {"toEndpoints": [{}]}
    )
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    if allow.dns:
        other = {"key": "k8s:k8s-app", "operator": "NotIn", "values": ["kube-dns"]}
        egress_deny.append({"toEndpoints": [{"matchLabels": {ns_key: DNS_NAMESPACE}, "matchExpressions": [other]}]})
        dns = {"matchLabels": {ns_key: DNS_NAMESPACE, "k8s:k8s-app": "kube-dns"}}
        not_53 = [{"port": port, "endPort": end, "protocol": "ANY"} for port, end in (("1", 52), ("54", 65535))]
        egress_deny.append({"toEndpoints": [dns], "toPorts": [{"ports": not_53}]})
        egress.append(
            {"toEndpoints": [dns], "toPorts": [{"ports": [{"port": "53", "protocol": p} for p in ("UDP", "TCP")]}]}
        )
    if forensics:
        peer = {"matchLabels": {ns_key: allow.forensics_namespace}}
        ingress.append({"fromEndpoints": [peer]})
        egress.append({"toEndpoints": [peer]})
    spec: dict[str, Any] = {"endpointSelector": selector, "ingressDeny": ingress_deny, "egressDeny": egress_deny}
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return spec


def _calico_allows(allow: AllowList) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ingress: list[dict[str, Any]] = []
    egress: list[dict[str, Any]] = []
    if allow.dns:
        dest = {
            "namespaceSelector": f"{NAMESPACE_NAME_LABEL} == '{DNS_NAMESPACE}'",
            "selector": "k8s-app == 'kube-dns'",
            "ports": [53],
        }
        egress += [{"action": "Allow", "protocol": p, "destination": dict(dest)} for p in ("UDP", "TCP")]
    if allow.forensics_namespace:
        peer = {"namespaceSelector": f"{NAMESPACE_NAME_LABEL} == '{allow.forensics_namespace}'"}
        ingress.append({"action": "Allow", "source": peer})
        egress.append({"action": "Allow", "destination": dict(peer)})
    return ingress, egress


def desired(kind: PolicyKind, priority: int = 0, external: bool = True, allow: AllowList = NO_ALLOW) -> dict[str, Any]:
    """The one cluster-wide policy that denies all ingress and egress of quarantined pods.

    ``external``: also deny egress to every address outside the cluster (a ``networks`` peer); the standard
    channel of AdminNetworkPolicy v1alpha1 has no such peer, so there it is off (and reported). ``allow``: the
    exceptions (DNS, a forensics namespace) as explicit Allow rules ahead of the Deny (Cilium: a narrower Deny).
    """
    meta = {
        "name": kind.name,
        "labels": dict(MANAGED_BY),
        "annotations": {
            "minerguard.io/description": (
                "Denies all traffic of pods minerguard quarantined as cryptominers. "
                "Release through their MinerIncident, not by editing this object."
            )
        },
    }
    body: dict[str, Any] = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta}
    if kind.backend == ADMIN_NETWORK_POLICY:
        deny = "Deny"
        egress_to: list[dict[str, Any]] = [{"namespaces": {}}]
        if external:
            egress_to.append({"networks": list(ALL_NETWORKS)})
        allow_in, allow_out = _admin_allows(kind, allow)
        body["spec"] = {
            "priority": priority,
            "subject": _quarantined_pods_anp(),
            "ingress": [*allow_in, {"name": "minerguard-deny-ingress", "action": deny, "from": [{"namespaces": {}}]}],
            "egress": [*allow_out, {"name": "minerguard-deny-egress", "action": deny, "to": egress_to}],
        }
        if kind is CNP_V1ALPHA2:
            body["spec"]["tier"] = "Admin"
    elif kind.backend == CILIUM:
        body["spec"] = _cilium_spec(allow)
    else:
        allow_in, allow_out = _calico_allows(allow)
        body["spec"] = {
            "order": float(priority),
            "selector": f"{QUARANTINE_LABEL} == 'true'",
            "types": ["Ingress", "Egress"],
            "ingress": [*allow_in, {"action": "Deny"}],
            "egress": [*allow_out, {"action": "Deny"}],
        }
    return body


def owned(live: Mapping[str, Any]) -> bool:
    """Whether the object carries minerguard's labels and no owner that could garbage-collect it."""
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items()) and not meta.get("ownerReferences")


def repair(
    kind: PolicyKind, live: Mapping[str, Any], priority: int, external: bool, allow: AllowList = NO_ALLOW
) -> list[dict[str, Any]]:
    """A JSON patch that makes ``live`` the desired object again: its whole spec replaced (a merge patch would
    keep keys someone added inside it), minerguard's labels set, any ownerReferences taken out (deleting
    someone else's object must never garbage-collect it)."""
    want = desired(kind, priority, external, allow)
    meta = live.get("metadata") or {}
    labels = {**dict(meta.get("labels") or {}), **MANAGED_BY}
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec", "value": want["spec"]},
        {"op": "add", "path": "/metadata/labels", "value": labels},
    ]
    if "ownerReferences" in meta:
        ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
    return ops


def _selects_label(kind: PolicyKind, spec: Mapping[str, Any]) -> bool:
    if kind.backend == ADMIN_NETWORK_POLICY:
        return dict(spec.get("subject") or {}) == _quarantined_pods_anp()
    if kind.backend == CILIUM:
        return dict(spec.get("endpointSelector") or {}) == {"matchLabels": {QUARANTINE_LABEL: "true"}}
    return spec.get("selector") == f"{QUARANTINE_LABEL} == 'true'"


def _rules_differ(kind: PolicyKind, spec: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    keys = {ADMIN_NETWORK_POLICY: ("ingress", "egress"), CILIUM: ("ingressDeny", "egressDeny", "ingress", "egress")}
    out = []
    for key in keys.get(kind.backend, ("ingress", "egress", "types")):
        if spec.get(key) != want.get(key):
            out.append(f"its {key} is not minerguard's deny-all")
    return out


def _rank(kind: PolicyKind, spec: Mapping[str, Any]) -> float:
    value = spec.get("order" if kind.backend == CALICO else "priority")
    if not isinstance(value, int | float):
        return float("inf") if kind.backend == CALICO else 1000.0  # Calico: no order comes last
    return float(value)


def _may_allow(kind: PolicyKind, spec: Mapping[str, Any]) -> bool:
    """Whether a policy of this kind has a rule that could let traffic through before a Deny of equal rank."""
    rules = [*(spec.get("ingress") or []), *(spec.get("egress") or [])]
    return any(str((r or {}).get("action", "Allow")) != "Deny" for r in rules)


def outranking(kind: PolicyKind, ours: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of other policies of the kind that could allow quarantined pods traffic before ours denies it.

    Cilium's deny rules always win over allows, so nothing outranks there. The admin tier and Calico order
    by a number (lower first; equal numbers are ambiguous): any other policy with an Allow/Accept/Pass rule
    at our rank or before ours counts, whatever it selects (conservative: selectors can be widened any time).
    """
    if kind.backend == CILIUM:
        return []
    spec = ours.get("spec") or {}
    mine = _rank(kind, spec)
    out = []
    for other in others:
        meta = other.get("metadata") or {}
        if meta.get("name") == kind.name:
            continue
        ospec = other.get("spec") or {}
        if kind is CNP_V1ALPHA2 and ospec.get("tier") != "Admin":
            continue  # the Baseline tier comes after every NetworkPolicy
        if _rank(kind, ospec) <= mine and _may_allow(kind, ospec):
            out.append(str(meta.get("name", "")))
    return sorted(out)


def problems(
    kind: PolicyKind,
    live: Mapping[str, Any] | None,
    others: Iterable[Mapping[str, Any]],
    priority: int = 0,
    external: bool = True,
    allow: AllowList = NO_ALLOW,
) -> list[str]:
    """Why quarantined pods are not isolated by ``live`` (the object read back); empty when they are.

    The rules must be exactly minerguard's: the Deny, and the allow-list's rules ahead of it only when configured."""
    what = f"{kind.kind} {kind.name}"
    if live is None:
        return [f"{what} does not exist"]
    spec = live.get("spec") or {}
    found = []
    if not _selects_label(kind, spec):
        found.append(f"{what} does not select every pod labelled {QUARANTINE_LABEL}=true")
    found += [f"{what}: {p}" for p in _rules_differ(kind, spec, desired(kind, priority, external, allow)["spec"])]
    if kind.backend == ADMIN_NETWORK_POLICY and spec.get("priority") != priority:
        found.append(f"{what} has priority {spec.get('priority')}, not {priority}")
    if kind.backend == CALICO and spec.get("order") != float(priority):
        found.append(f"{what} has order {spec.get('order')}, not {priority}")
    if kind is CNP_V1ALPHA2 and spec.get("tier") != "Admin":
        found.append(f"{what} is not in the Admin tier")
    ahead = outranking(kind, live, others)
    if ahead:
        found.append(f"{what} is not ahead of {kind.kind} {', '.join(ahead)}, which may allow traffic")
    return found


def has_external_deny(live: Mapping[str, Any]) -> bool:
    """Whether an admin-tier policy's egress Deny also covers every address outside the cluster."""
    for rule in (live.get("spec") or {}).get("egress") or []:
        for peer in rule.get("to") or []:
            if sorted(peer.get("networks") or []) == sorted(ALL_NETWORKS):
                return True
    return False
