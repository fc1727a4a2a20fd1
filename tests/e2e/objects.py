"""Objects the e2e tests create and read: MinerPolicies, miner pods, incidents, Events."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from minerguard.domain import netpol

GROUP, VERSION = "minerguard.io", "v1alpha1"
WALLET = "4" + "A" * 94
MINER_ARGS = ["-o", "stratum+tcp://pool.supportxmr.com:3333", "-u", WALLET, "--donate-level", "1"]


def policy_body(name: str, namespace: str, mode: str = "Enforce", **signals: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "mode": mode,
        "scope": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        "signals": signals
        or {
            "processes": [{"glob": "xmrig"}, {"glob": "kdevtmpfsi"}],
            "pools": {"schemes": ["stratum+tcp", "stratum+ssl"]},
        },
    }
    if mode == "Enforce":
        spec["actions"] = [{"name": "quarantine"}]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MinerPolicy", "metadata": {"name": name}, "spec": spec}


def ready(custom: client.CustomObjectsApi, name: str) -> bool:
    obj = custom.get_cluster_custom_object(GROUP, VERSION, "minerpolicies", name)
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def miner_pod(name: str, labels: dict[str, str] | None = None, command: list[str] | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": name}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(name="worker", image="alpine:3.20", command=command or ["xmrig"], args=MINER_ARGS)
            ]
        ),
    )


def incidents(custom: client.CustomObjectsApi, namespace: str) -> list[dict[str, Any]]:
    return list(custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "minerincidents")["items"])


def incident_in_state(custom: client.CustomObjectsApi, namespace: str, state: str) -> dict[str, Any] | None:
    for item in incidents(custom, namespace):
        if (item.get("status") or {}).get("state") == state:
            return item
    return None


def pod_events(core: client.CoreV1Api, namespace: str, pod: str) -> list[client.CoreV1Event]:
    return list(core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items)


def reasons(core: client.CoreV1Api, namespace: str, pod: str) -> list[str]:
    return [e.reason for e in pod_events(core, namespace, pod)]


def quarantined(core: client.CoreV1Api, namespace: str, pod: str) -> bool:
    labels = core.read_namespaced_pod(pod, namespace).metadata.labels or {}
    return labels.get(netpol.QUARANTINE_LABEL) == "true"


def isolation_problems(
    core: client.CoreV1Api, networking: client.NetworkingV1Api, namespace: str, pod: str
) -> list[str]:
    """Read the live objects and ask the NetworkPolicy semantics whether anything still lets traffic through."""
    api = client.ApiClient()
    labels = core.read_namespaced_pod(pod, namespace).metadata.labels or {}
    policies = [api.sanitize_for_serialization(p) for p in networking.list_namespaced_network_policy(namespace).items]
    return netpol.isolation_problems(policies, labels)


def network_policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A NetworkPolicy object of the given spec, as a namespace owner would write it."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


def allow_all(name: str = "allow-all", pod_selector: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tenant's NetworkPolicy allowing every ingress and egress of the pods it selects (all, by default)."""
    spec = {"podSelector": pod_selector or {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]}
    return network_policy(name, spec)


def deployment(name: str, replicas: int, pod_spec: client.V1PodSpec | None = None) -> client.V1Deployment:
    """A Deployment of ``replicas`` pods labelled app=<name>; its pods run the miner unless a spec is given."""
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels), spec=pod_spec or miner_pod("x").spec
            ),
        ),
    )
