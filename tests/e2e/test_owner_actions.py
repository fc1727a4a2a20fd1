"""scaleOwner: a contained workload's owner stops making miners; release puts it back; large owners are held back."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.e2e.helpers import eventually, kubectl
from tests.e2e.objects import deployment, incident_in_state
from tests.e2e.operator_proc import OperatorProcess


def scale_policy_spec(namespace: str) -> dict[str, Any]:
    return {
        "mode": "Enforce",
        "scope": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        "signals": {"processes": [{"glob": "xmrig"}]},
        "actions": [{"name": "quarantine"}, {"name": "scaleOwner"}],
    }


def actions_of(custom: client.CustomObjectsApi, namespace: str, name: str, action: str) -> list[dict[str, Any]]:
    try:
        obj = custom.get_namespaced_custom_object("minerguard.io", "v1alpha1", namespace, "minerincidents", name)
    except client.ApiException:
        return []
    return [a for a in (obj.get("status") or {}).get("actions") or [] if a["action"] == action]


def test_deployment_is_scaled_to_zero_and_release_restores_it(
    operator: OperatorProcess,
    apps: client.AppsV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace, spec=scale_policy_spec(namespace))
    apps.create_namespaced_deployment(namespace, deployment("miner", 2))

    def scaled() -> bool:
        d = apps.read_namespaced_deployment("miner", namespace)
        return d.spec.replicas == 0 and (d.metadata.annotations or {}).get("minerguard.io/replicas-before") == "2"

    eventually(scaled, 60, "the Deployment scaled to 0 with its replica count recorded")
    done = eventually(lambda: actions_of(custom, namespace, "deployment-miner", "scaleOwner"), 30, "the record")
    # A later resync may add a "held by this incident" record: look for the scale itself.
    assert any(a["result"] == "Succeeded" and "from 2 to 0" in a["message"] for a in done), done

    kubectl(
        "patch",
        "minerincident",
        "deployment-miner",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec": {"release": true}}',
    )
    eventually(lambda: incident_in_state(custom, namespace, "Released"), 30, "the incident released")
    d = eventually(
        lambda: (d := apps.read_namespaced_deployment("miner", namespace)).spec.replicas == 2 and d,
        30,
        "the Deployment back at 2 replicas",
    )
    assert "minerguard.io/replicas-before" not in (d.metadata.annotations or {})


def test_cronjob_is_suspended(
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace, spec=scale_policy_spec(namespace))
    kubectl(
        "create",
        "cronjob",
        "nightly",
        "-n",
        namespace,
        "--image=alpine:3.20",
        "--schedule=0 3 * * *",
        "--",
        "xmrig",
        "-o",
        "stratum+tcp://pool.example:3333",
    )
    kubectl("create", "job", "nightly-manual", "-n", namespace, "--from=cronjob/nightly")

    def suspended() -> bool:
        out = kubectl("get", "cronjob", "nightly", "-n", namespace, "-o", "jsonpath={.spec.suspend}").stdout
        return out == "true"

    eventually(suspended, 60, "the CronJob suspended")
    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "the incident")
    assert incident["spec"]["workload"]["kind"] == "CronJob" and incident["metadata"]["name"] == "cronjob-nightly"


def test_a_large_owner_is_held_back_by_the_guard(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    make_policy(namespace, spec=scale_policy_spec(namespace))
    apps.create_namespaced_deployment(namespace, deployment("big", 12))

    def held() -> dict[str, Any] | None:
        found = actions_of(custom, namespace, "deployment-big", "scaleOwner")
        return found[-1] if found and found[-1]["result"] == "Suppressed" else None

    record = eventually(held, 60, "scaleOwner held back")
    assert "MaxScaleReplicas" in record["message"]
    assert apps.read_namespaced_deployment("big", namespace).spec.replicas == 12
    events = core.list_namespaced_event(namespace).items
    assert any(e.reason == "ContainmentSuppressed" and "MaxScaleReplicas" in e.message for e in events)
    node_events = core.list_namespaced_event("default", field_selector="involvedObject.kind=Node").items
    assert not any("MaxScaleReplicas" in (e.message or "") for e in node_events), "no Event about a bogus node"
