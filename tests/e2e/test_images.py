"""Miners baked into images, on the real control plane and a real registry on loopback (issue #13).

The pods here have innocent specs; their images, pushed from Python to Debian's docker-registry
(distribution 2.8, one plain and one with token auth), carry the miner in their config or history.
KWOK's kubelets pull nothing, so the operator must read each image's config itself. The session
operator (registry reading off) is stopped for this module; one with registry reading on runs instead.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from minerguard.scan import main as scan_main
from tests.e2e.helpers import consistently, eventually
from tests.e2e.objects import GROUP, VERSION, incident_in_state, quarantined
from tests.e2e.operator_proc import OperatorProcess
from tests.registry import (
    MINER_ENTRYPOINT,
    MINER_ENV_CONFIG,
    MINER_HISTORY,
    NGINX,
    PAUSE,
    Registry,
    TokenServer,
    registry_binary,
)

pytestmark = pytest.mark.e2e

SIGNALS: dict[str, Any] = {
    "imageConfig": True,
    "processes": [{"glob": "xmrig*"}, {"glob": "kswapd0"}],
    "pools": {
        "schemes": ["stratum+tcp"],
        "hosts": [{"glob": "*.supportxmr.com"}, {"glob": "*.moneroocean.stream"}],
    },
    "wallets": {"monero": True},
}


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Registry]]:
    assert registry_binary(), "docker-registry is missing: hack/tools.sh installs it (make tools)"
    plain = Registry(tmp_path_factory.mktemp("registry"))
    workdir = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(workdir)
    guarded = Registry(workdir, tokens)
    plain.start()
    guarded.start()
    yield plain, guarded
    plain.stop()
    guarded.stop()
    tokens.stop()


@pytest.fixture(scope="module")
def image_operator(operator: OperatorProcess, registries: tuple[Registry, Registry]) -> Iterator[OperatorProcess]:
    plain, guarded = registries
    assert guarded.tokens is not None
    hosts = ",".join([plain.host, guarded.host, urllib.parse.urlsplit(guarded.tokens.url).netloc])
    operator.stop()  # the session operator does not read images; only this one acts meanwhile
    proc = OperatorProcess(
        "images-operator",
        {
            "MINERGUARD_IMAGES_ENABLED": "true",
            "MINERGUARD_IMAGES_REGISTRIES": hosts,
            "MINERGUARD_IMAGES_INSECURE": hosts,
            "MINERGUARD_IMAGES_TIMEOUT": "3",
            "MINERGUARD_IMAGES_NEGATIVE_TTL": "300",
        },
    )
    proc.start()
    yield proc
    proc.stop()
    operator.start()


def innocent_pod(name: str, image: str, **container: Any) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image, **container)]),
    )


def policy_status(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return dict(custom.get_cluster_custom_object(GROUP, VERSION, "minerpolicies", name).get("status") or {})


def image_condition(custom: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    found = [c for c in policy_status(custom, name).get("conditions") or [] if c["type"] == "ImageConfigsRead"]
    return found[0] if found else None


def details(incident: dict[str, Any]) -> list[str]:
    return [e["detail"] for e in incident["status"]["evidence"]]


def test_miner_images_with_innocent_specs_are_quarantined_with_the_image_named(
    image_operator: OperatorProcess,
    registries: tuple[Registry, Registry],
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    plain, guarded = registries
    policy = make_policy(namespace, **SIGNALS)
    plain.push_image("team/pause", "3.9", MINER_ENTRYPOINT)
    guarded.push_image("ci/builder", "2024", MINER_HISTORY, arches=("arm64", "amd64"))  # token auth, an index
    plain.push_image("apps/api", "1", MINER_ENV_CONFIG)
    core.create_namespaced_pod(namespace, innocent_pod("pause", f"{plain.host}/team/pause:3.9"))
    core.create_namespaced_pod(namespace, innocent_pod("builder", f"{guarded.host}/ci/builder:2024"))
    core.create_namespaced_pod(namespace, innocent_pod("api", f"{plain.host}/apps/api:1"))

    for name in ("pause", "builder", "api"):
        eventually(lambda name=name: quarantined(core, namespace, name), 60, f"{name} quarantined from its image")
    # The incident's status is written after the cut (and after the foothold's reviews): wait for all three.
    eventually(lambda: len(incidents_of(custom, namespace)) >= 3, 30, "the three incidents' evidence")
    found = [d for item in incidents_of(custom, namespace) for d in details(item)]
    assert any("in image config Entrypoint" in d for d in found), found
    assert any("image history step 4: RUN curl" in d and "kswapd0" in d for d in found), found
    assert any("image config Env APP_CONFIG" in d for d in found), found
    condition = eventually(lambda: image_condition(custom, policy), 30, "the ImageConfigsRead condition")
    assert condition["status"] == "True"
    assert guarded.tokens is not None and guarded.tokens.asked  # the token-auth registry was read with a token


def incidents_of(custom: client.CustomObjectsApi, namespace: str) -> list[dict[str, Any]]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "minerincidents")["items"]
    return [i for i in items if (i.get("status") or {}).get("evidence")]


def test_benign_look_alikes_get_zero_writes(
    image_operator: OperatorProcess,
    registries: tuple[Registry, Registry],
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    plain, _ = registries
    make_policy(namespace, **SIGNALS)
    reads = image_operator.metric("minerguard_image_config_reads_total") or 0
    plain.push_image("k8s/pause", "3.9", PAUSE, arches=("amd64", "arm64"))
    plain.push_image("library/nginx", "1.25", NGINX)
    for name, image in (("pause", f"{plain.host}/k8s/pause:3.9"), ("web", f"{plain.host}/library/nginx:1.25")):
        pod = innocent_pod(name, image)
        pod.spec.scheduler_name = "not-scheduled"  # Pending: no KWOK status write, only the operator could write
        core.create_namespaced_pod(namespace, pod)
    versions = {p.metadata.name: p.metadata.resource_version for p in core.list_namespaced_pod(namespace).items}
    eventually(lambda: (image_operator.metric("minerguard_image_config_reads_total") or 0) >= reads + 2, 30, "2 reads")
    consistently(lambda: not any(quarantined(core, namespace, n) for n in versions), 4, "look-alikes left alone")
    after = {p.metadata.name: p.metadata.resource_version for p in core.list_namespaced_pod(namespace).items}
    assert after == versions  # zero writes
    assert not incidents_of(custom, namespace)


def test_an_oversized_config_is_refused_and_reported(
    image_operator: OperatorProcess,
    registries: tuple[Registry, Registry],
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    plain, _ = registries
    policy = make_policy(namespace, **SIGNALS)
    plain.push_oversized_config("big/config", "1", 50 << 20)
    core.create_namespaced_pod(namespace, innocent_pod("big", f"{plain.host}/big/config:1"))
    eventually(
        lambda: (image_operator.metric('minerguard_image_config_reads_total{result="TooLarge"}') or 0) >= 1,
        30,
        "the 50 MiB config refused",
    )
    condition = eventually(
        lambda: (c := image_condition(custom, policy)) and c["status"] == "False" and c, 30, "ImageConfigsRead False"
    )
    assert condition["reason"] == "TooLarge" and "big/config" in condition["message"]
    assert not quarantined(core, namespace, "big")


def test_a_thousand_pods_on_one_digest_cause_one_config_read(
    image_operator: OperatorProcess,
    registries: tuple[Registry, Registry],
    core: client.CoreV1Api,
    namespace: str,
    make_policy: Any,
) -> None:
    plain, _ = registries
    make_policy(namespace, **SIGNALS)
    top = plain.push_image("fleet/nginx", "1.25", NGINX)
    image = f"{plain.host}/fleet/nginx@{top}"
    before = image_operator.metric("minerguard_image_config_reads_total") or 0
    evaluated = image_operator.metric("minerguard_evaluation_seconds_count") or 0

    def create(i: int) -> None:
        pod = innocent_pod(f"fleet-{i}", image)
        pod.spec.scheduler_name = "not-scheduled"  # stays Pending: cheap on the shared machine
        core.create_namespaced_pod(namespace, pod)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(1000)))
    eventually(
        lambda: (image_operator.metric("minerguard_evaluation_seconds_count") or 0) >= evaluated + 1000,
        120,
        "1000 pod evaluations",
    )
    eventually(lambda: (image_operator.metric("minerguard_image_config_reads_total") or 0) >= before + 1, 30, "a read")
    # Exactly one config fetch for the 1,000 pods, as the registry itself counts: one manifest and one blob (the
    # config: layers are never pulled).
    consistently(lambda: plain.served(f"/v2/fleet/nginx/manifests/{top}") == 1, 3, "one manifest read")
    blobs = [
        line
        for line in (plain.workdir / "registry.log").read_text().splitlines()
        if '"GET /v2/fleet/nginx/blobs/' in line
    ]
    assert len(blobs) == 1, blobs


def test_registry_down_spec_detection_goes_on_and_the_condition_says_so(
    image_operator: OperatorProcess,
    registries: tuple[Registry, Registry],
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    plain, _ = registries
    policy = make_policy(namespace, **SIGNALS)
    plain.stop()
    try:
        pod = innocent_pod("miner", f"{plain.host}/never/read:1", command=["xmrig"])
        pod.spec.containers[0].args = ["-o", "stratum+tcp://pool.supportxmr.com:3333"]
        core.create_namespaced_pod(namespace, pod)
        eventually(lambda: quarantined(core, namespace, "miner"), 30, "the spec-visible miner quarantined")
        incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "a Contained incident")
        assert all("image" not in d for d in details(incident))
        condition = eventually(
            lambda: (c := image_condition(custom, policy)) and c["reason"] == "Unreachable" and c,
            30,
            "ImageConfigsRead Unreachable",  # an earlier failure's reason may show first
        )
        assert condition["status"] == "False" and "spec alone" in condition["message"]
        assert (image_operator.metric('minerguard_image_config_reads_total{result="Unreachable"}') or 0) >= 1
        assert image_operator.proc is not None and image_operator.proc.poll() is None  # no crash
    finally:
        plain.start()


def test_scan_inspect_images_reads_the_image_and_only_when_asked(
    registries: tuple[Registry, Registry], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, _ = registries
    plain.push_image("scan/pause", "1", MINER_ENTRYPOINT)
    policy = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MinerPolicy", "metadata": {"name": "img"}}
    policy["spec"] = {"mode": "Enforce", "actions": [{"name": "quarantine"}], "signals": SIGNALS}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a"}}
    pod["spec"] = {"containers": [{"name": "c", "image": f"{plain.host}/scan/pause:1"}]}
    (tmp_path / "pod.json").write_text(json.dumps(pod))
    args = ["--policies", str(tmp_path / "policy.json"), "-o", "json", str(tmp_path / "pod.json")]
    assert scan_main(args) == 0  # off by default: the spec alone is innocent
    capsys.readouterr()
    assert scan_main(["--inspect-images", "--insecure-registry", plain.host, *args]) == 1
    out = json.loads(capsys.readouterr().out)
    details = [e["detail"] for r in out["results"] for e in r["evidence"]]
    assert any("image config Entrypoint" in d for d in details), details
    # A registry that is not allowed is never contacted: a note, and the spec alone.
    assert scan_main(["--inspect-images", "--registry", "ghcr.io", *args]) == 0
    assert "NotAllowed" in capsys.readouterr().err
