"""Detection and quarantine of miner pods, on the real control plane with the operator running as a process.

Each test scopes its MinerPolicy to its own namespace, so tests do not see each other's pods.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from minerguard.domain import netpol
from tests.e2e.helpers import consistently, eventually, kubectl
from tests.e2e.objects import (
    GROUP,
    VERSION,
    allow_all,
    deployment,
    incident_in_state,
    incidents,
    isolation_problems,
    miner_pod,
    network_policy,
    pod_events,
    policy_body,
    quarantined,
    reasons,
)
from tests.e2e.operator_proc import OperatorProcess


def test_bare_miner_pod_is_quarantined_with_events_and_incident(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    policy = make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner"))

    eventually(lambda: quarantined(core, namespace, "miner"), 30, "the miner pod to be labelled quarantined")
    assert isolation_problems(core, networking, namespace, "miner") == []
    np = networking.read_namespaced_network_policy(netpol.QUARANTINE_POLICY, namespace)
    assert sorted(np.spec.policy_types) == ["Egress", "Ingress"] and not np.spec.ingress and not np.spec.egress

    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "a Contained incident")
    assert incident["metadata"]["name"] == "pod-miner"
    assert incident["spec"]["policy"] == policy and incident["spec"]["workload"]["kind"] == "Pod"
    signals = {e["signal"] for e in incident["status"]["evidence"]}
    assert {"process", "poolEndpoint"} <= signals
    assert any(a["action"] == "quarantine" and a["result"] == "Succeeded" for a in incident["status"]["actions"])

    eventually(
        lambda: {"MinerDetected", "PodQuarantined"} <= set(reasons(core, namespace, "miner")),
        30,
        "MinerDetected and PodQuarantined Events on the pod",
    )
    detected = next(e for e in pod_events(core, namespace, "miner") if e.reason == "MinerDetected")
    assert detected.type == "Warning" and policy in detected.message and "worker" in detected.message
    policy_events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={policy}").items
    assert any(e.reason == "MinerDetected" for e in policy_events)


def test_deployment_miner_behind_allow_all_policy_is_isolated_without_replica_storm(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace)
    networking.create_namespaced_network_policy(namespace, allow_all(pod_selector={"matchLabels": {"app": "miner"}}))
    apps.create_namespaced_deployment(namespace, deployment("miner", 2))

    def both_contained() -> list[str]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=miner").items
        names = [p.metadata.name for p in pods if (p.metadata.labels or {}).get(netpol.QUARANTINE_LABEL) == "true"]
        return names if len(names) == 2 else []

    names = eventually(both_contained, 60, "both replicas quarantined")
    for name in names:
        assert isolation_problems(core, networking, namespace, name) == [], name
    allow = networking.read_namespaced_network_policy("allow-all", namespace)
    assert {"key": netpol.QUARANTINE_LABEL, "operator": "DoesNotExist", "values": None} in [
        e.to_dict() for e in allow.spec.pod_selector.match_expressions or []
    ]
    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "a Contained incident")
    assert incident["spec"]["workload"]["kind"] == "Deployment" and incident["metadata"]["name"] == "deployment-miner"
    assert len(incidents(custom, namespace)) == 1

    def no_storm() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=miner").items
        rs = apps.list_namespaced_replica_set(namespace).items
        return len(pods) == 2 and len(rs) == 1 and rs[0].status.replicas == 2

    consistently(no_storm, 6, "the Deployment keeps exactly 2 pods in 1 ReplicaSet")


def test_benign_pods_get_zero_writes(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace, processes=[{"glob": "xmrig"}], pools={"schemes": ["stratum+tcp"], "ports": [{"port": 4444}]})
    benign = {
        "selenium-hub": (["/opt/bin/entry_point.sh"], {"SE_HUB_PORT": "4444"}),
        "dev-server": (["npm", "run", "dev", "--", "--port", "3333"], {}),
        "web": (["nginx", "-g", "daemon off;"], {"UPSTREAM": "http://selenium-hub:4444/wd/hub"}),
    }
    for name, (command, env) in benign.items():
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="main",
                            image=f"example/{name}:1",
                            command=command,
                            env=[client.V1EnvVar(name=k, value=v) for k, v in env.items()],
                        )
                    ]
                ),
            ),
        )
    eventually(
        lambda: all(core.read_namespaced_pod(n, namespace).status.phase == "Running" for n in benign),
        60,
        "benign pods Running",
    )
    before = {n: core.read_namespaced_pod(n, namespace).metadata.resource_version for n in benign}
    # A miner created afterwards is contained: proof that the operator has seen the namespace's events.
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(lambda: quarantined(core, namespace, "miner"), 30, "the miner quarantined")
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "its incident")

    for name in benign:
        pod = core.read_namespaced_pod(name, namespace)
        assert pod.metadata.resource_version == before[name], f"{name} was written to"
        managers = {m.manager for m in pod.metadata.managed_fields or []}
        assert not any("minerguard" in m or "kopf" in m for m in managers), managers
        assert not any(k.startswith(("kopf.", "minerguard.io")) for k in (pod.metadata.annotations or {}))
        assert not pod.metadata.finalizers
        assert not any(e.reason in ("MinerDetected", "PodQuarantined") for e in pod_events(core, namespace, name))
    miner = core.read_namespaced_pod("miner", namespace)
    assert any("minerguard" in m.manager for m in miner.metadata.managed_fields), "the miner's write is attributed"
    assert len(incidents(custom, namespace)) == 1


def test_audit_mode_reports_but_contains_nothing(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace, mode="Audit")
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    incident = eventually(lambda: incident_in_state(custom, namespace, "Detected"), 30, "a Detected incident")
    assert incident["spec"]["mode"] == "Audit"
    eventually(lambda: "MinerDetected" in reasons(core, namespace, "miner"), 30, "MinerDetected Event")
    consistently(lambda: not quarantined(core, namespace, "miner"), 4, "the Audit-mode miner stays unlabelled")
    assert networking.list_namespaced_network_policy(namespace).items == []
    assert "PodQuarantined" not in reasons(core, namespace, "miner")


def test_release_restores_traffic_and_keeps_the_record(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace)
    networking.create_namespaced_network_policy(
        namespace,
        network_policy("allow-web", {"podSelector": {}, "ingress": [{"ports": [{"port": 8080}]}]}),
    )
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "a Contained incident")
    name = incident["metadata"]["name"]

    kubectl(
        "patch",
        "minerincident",
        name,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec": {"release": true, "releasedBy": "alice: false positive"}}',
    )
    eventually(lambda: incident_in_state(custom, namespace, "Released"), 30, "the incident Released")
    eventually(lambda: not quarantined(core, namespace, "miner"), 30, "the quarantine label removed")
    assert [p.metadata.name for p in networking.list_namespaced_network_policy(namespace).items] == ["allow-web"]
    allow = networking.read_namespaced_network_policy("allow-web", namespace)
    assert not allow.spec.pod_selector.match_expressions, "the exclusion is taken out again"
    eventually(lambda: "Released" in reasons(core, namespace, "miner"), 30, "a Released Event")
    consistently(lambda: not quarantined(core, namespace, "miner"), 6, "a released pod is not quarantined again")
    record = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "minerincidents", name)
    assert record["status"]["state"] == "Released" and record["status"]["evidence"]
    assert any(a["action"] == "release" for a in record["status"]["actions"])


def test_invalid_policy_is_reported_and_others_keep_working(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    bad = f"bad-{namespace}"[:60]
    custom.create_cluster_custom_object(
        GROUP, VERSION, "minerpolicies", policy_body(bad, namespace, processes=[{"regex": "xmrig("}])
    )
    try:

        def invalid() -> dict[str, Any] | None:
            obj = custom.get_cluster_custom_object(GROUP, VERSION, "minerpolicies", bad)
            conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
            return conds.get("Invalid") if conds.get("Invalid", {}).get("status") == "True" else None

        cond = eventually(invalid, 30, "the bad policy marked Invalid")
        assert cond["reason"] == "InvalidRegex" and "processes[0].regex" in cond["message"]
        events = core.list_namespaced_event("default", field_selector=f"involvedObject.name={bad}").items
        assert any(e.reason == "InvalidPolicy" and e.type == "Warning" for e in events)

        make_policy(namespace)
        core.create_namespaced_pod(namespace, miner_pod("miner"))
        eventually(lambda: quarantined(core, namespace, "miner"), 30, "the valid policy still contains miners")
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "minerpolicies", bad)


def test_schema_rejects_what_it_can(custom: client.CustomObjectsApi, cluster: dict[str, Any]) -> None:
    cases = {
        "unknown action": {"mode": "Enforce", "signals": {"processes": [{"glob": "x"}]}, "actions": [{"name": "nuke"}]},
        "glob and regex": {"mode": "Audit", "signals": {"processes": [{"glob": "x", "regex": "x"}]}},
        "enforce without actions": {"mode": "Enforce", "signals": {"processes": [{"glob": "x"}]}},
        "bad digest": {"mode": "Audit", "signals": {"imageDigests": [{"digest": "sha256:xyz"}]}},
    }
    for what, spec in cases.items():
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MinerPolicy",
            "metadata": {"name": "rejected"},
            "spec": spec,
        }
        with pytest.raises(ApiException) as err:
            custom.create_cluster_custom_object(GROUP, VERSION, "minerpolicies", body)
        assert err.value.status == 422, what


def test_operator_restart_creates_no_duplicates(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner-a"))
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "a Contained incident")
    eventually(lambda: "PodQuarantined" in reasons(core, namespace, "miner-a"), 30, "PodQuarantined Event")

    operator.restart()
    core.create_namespaced_pod(namespace, miner_pod("miner-b"))
    eventually(lambda: quarantined(core, namespace, "miner-b"), 30, "a miner created after the restart contained")
    eventually(
        lambda: (
            len(incidents(custom, namespace)) == 2
            and all((i.get("status") or {}).get("state") == "Contained" for i in incidents(custom, namespace))
        ),
        30,
        "both incidents Contained",
    )

    assert len(networking.list_namespaced_network_policy(namespace).items) == 1
    assert reasons(core, namespace, "miner-a").count("PodQuarantined") == 1
    assert reasons(core, namespace, "miner-a").count("MinerDetected") == 1
    record = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "minerincidents", "pod-miner-a")
    assert [a["action"] for a in record["status"]["actions"]].count("quarantine") == 1


def test_a_miner_right_after_a_burst_of_benign_pods_is_not_stuck_behind_them(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    """300 benign pods arrive at once; the miner created right after them is still contained promptly."""
    from concurrent.futures import ThreadPoolExecutor

    make_policy(namespace)

    def benign(i: int) -> None:
        core.create_namespaced_pod(
            namespace,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=f"web-{i}", labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")]),
            ),
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(benign, range(300)))
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(lambda: quarantined(core, namespace, "miner"), 30, "the miner contained despite the burst")
    # The cut comes first and the incident right after it (cut-first): wait for the record, then count.
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "its incident")
    assert len(incidents(custom, namespace)) == 1
