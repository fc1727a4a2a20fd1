"""Miners whose pool and wallet live only in a ConfigMap, on the real control plane.

The operator caches ConfigMaps (get/list/watch), reads those a pod references when a policy
has ``signals.configMaps``, and evaluates the pods that use a ConfigMap again when it changes.
Secrets are never read: the operator's account cannot, and a wallet kept in a Secret stays
invisible to the spec signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from tests.e2e.helpers import consistently, eventually, kubectl
from tests.e2e.objects import GROUP, VERSION, incident_in_state, quarantined
from tests.e2e.operator_proc import OperatorProcess
from tests.e2e.test_admission import can_i, operator_account  # noqa: F401 - the fixture is used below

WALLET = "4" + ("7Fq2LmNp9RsTuVwXy3Za4Bc5De6Ef8Gh" * 4)[:94]
MINER_SETTINGS = {"POOL_URL": "stratum+tcp://pool.hashvault.pro:443", "WALLET": WALLET}
BENIGN_SETTINGS = {"POOL_URL": "https://api.example.org/v1", "WALLET": "none"}
SIGNALS: dict[str, Any] = {
    "configMaps": True,
    "pools": {"schemes": ["stratum+tcp"], "hosts": [{"regex": r"(^|\.)hashvault\.pro$"}]},
    "wallets": {"monero": True},
}


def config_map(name: str, data: dict[str, str]) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def service_pod(name: str, env_from: list[client.V1EnvFromSource] | None = None, **container: Any) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="svc",
                    image="alpine:3.20",
                    command=["/bin/sh", "-c", "exec /opt/svc -o $POOL_URL -u $WALLET"],
                    env_from=env_from,
                    **container,
                )
            ]
        ),
    )


def from_config_map(name: str) -> list[client.V1EnvFromSource]:
    return [client.V1EnvFromSource(config_map_ref=client.V1ConfigMapEnvSource(name=name))]


def matched_pods(custom: client.CustomObjectsApi, policy: str) -> int | None:
    status = custom.get_cluster_custom_object(GROUP, VERSION, "minerpolicies", policy).get("status") or {}
    count = status.get("matchedPods")
    return count if isinstance(count, int) else None


def test_miner_configured_only_through_a_configmap_is_quarantined_then_released_once_benign(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    policy = make_policy(namespace, **SIGNALS)
    core.create_namespaced_config_map(namespace, config_map("svc-settings", MINER_SETTINGS))
    core.create_namespaced_pod(namespace, service_pod("svc", from_config_map("svc-settings")))

    eventually(lambda: quarantined(core, namespace, "svc"), 30, "the pod configured by its ConfigMap quarantined")
    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "a Contained incident")
    evidence = {(e["signal"], e["strength"]) for e in incident["status"]["evidence"]}
    assert {("poolEndpoint", "Strong"), ("poolHost", "Strong"), ("wallet", "Strong")} <= evidence

    core.patch_namespaced_config_map("svc-settings", namespace, {"data": BENIGN_SETTINGS})
    eventually(lambda: matched_pods(custom, policy) == 0, 30, "the pod no longer matching once its ConfigMap is benign")
    kubectl(
        "patch",
        "minerincident",
        incident["metadata"]["name"],
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec": {"release": true, "releasedBy": "bob: ConfigMap cleaned"}}',
    )
    eventually(lambda: incident_in_state(custom, namespace, "Released"), 30, "the incident Released")
    eventually(lambda: not quarantined(core, namespace, "svc"), 30, "the quarantine label removed")
    consistently(lambda: not quarantined(core, namespace, "svc"), 5, "the released pod stays free")


def test_a_configmap_that_turns_malicious_gets_its_pods_contained(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    policy = make_policy(namespace, **SIGNALS)
    core.create_namespaced_config_map(namespace, config_map("later", BENIGN_SETTINGS))
    core.create_namespaced_pod(namespace, service_pod("svc", from_config_map("later")))
    eventually(lambda: matched_pods(custom, policy) == 0, 30, "the policy status counting the benign pod out")
    consistently(lambda: not quarantined(core, namespace, "svc"), 4, "a pod with a benign ConfigMap left alone")
    before = core.read_namespaced_pod("svc", namespace).metadata.resource_version

    core.replace_namespaced_config_map("later", namespace, config_map("later", MINER_SETTINGS))
    eventually(lambda: quarantined(core, namespace, "svc"), 30, "the pod contained after its ConfigMap changed")
    assert core.read_namespaced_pod("svc", namespace).metadata.resource_version != before


def test_a_wallet_in_a_secret_is_not_read_and_the_operator_cannot_read_secrets(
    operator: OperatorProcess,
    operator_account: tuple[str, Path],  # noqa: F811 - the fixture imported above
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    user, _ = operator_account
    for verb in ("get", "list", "watch"):
        assert not can_i(user, verb, "secrets", "-A"), f"the operator's account can {verb} secrets"
        assert can_i(user, verb, "configmaps", "-A"), f"the operator's account cannot {verb} configmaps"
    assert kubectl("auth", "can-i", "get", "secrets", "--as", user, "-A", check=False).stdout.strip() == "no"

    policy = make_policy(namespace, **SIGNALS)
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="svc-secret"), string_data=MINER_SETTINGS)
    )
    env_from = [client.V1EnvFromSource(secret_ref=client.V1SecretEnvSource(name="svc-secret"))]
    core.create_namespaced_pod(namespace, service_pod("svc", env_from))
    eventually(lambda: matched_pods(custom, policy) == 0, 30, "the policy status counting the pod out")
    consistently(lambda: not quarantined(core, namespace, "svc"), 4, "a Secret-configured pod stays unseen")
