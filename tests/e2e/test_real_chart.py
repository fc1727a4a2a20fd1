"""The chart's own Deployment, running for real on the real node (not simulated by KWOK).

``make image`` builds the operator image without Docker; it is imported into real-0's containerd
and ``helm install`` runs the chart with its defaults plus the image's pull policy and the node
selection. The two replicas run as containers with their ServiceAccount token (the apiserver
reached as the ``kubernetes`` Service), their probes pass against the kubelet, kopf peering makes
one of them act, and that one contains a miner. ``helm test`` then runs its Job as a container.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.helpers import KUBECONFIG, eventually, kubectl
from tests.e2e.objects import incident_in_state, miner_pod, quarantined
from tests.e2e.realnode import NODE, TAINT_KEY, RealNode
from tests.e2e.test_chart import CHART, crd_metadata, helm, release_keeps_its_crds, restore_crd_metadata

pytestmark = pytest.mark.realnode


def operator_pods(namespace: str, release: str) -> list[dict[str, Any]]:
    out = kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}", "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if p["metadata"]["labels"].get("app.kubernetes.io/component") != "test"]


def test_the_charts_deployment_runs_on_the_real_node_contains_a_miner_and_passes_helm_test(
    real_node: RealNode,
    paused_session_operator: None,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    release, system = f"mgr-{suffix}", f"minerguard-real-{suffix}"
    repository, tag = real_node.image.rsplit(":", 1)
    crds_before = crd_metadata()
    installed = False
    try:
        t0 = time.monotonic()
        helm(
            "install", release, str(CHART), "--namespace", system, "--create-namespace",
            "--take-ownership", "--wait", "--timeout", "4m",
            "--set", f"peering.name={release}",
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never",
            "--set-json", 'nodeSelector={"minerguard.io/real-node": "true"}',
            "--set-json", "tolerations=" + json.dumps([{"key": TAINT_KEY, "operator": "Exists"}]),
            kubeconfig=KUBECONFIG,
        )  # fmt: skip
        installed = True
        ready_s = time.monotonic() - t0
        pods = operator_pods(system, release)
        assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {NODE}
        for pod in pods:
            status = pod["status"]["containerStatuses"][0]
            assert status["ready"] and status["started"], status
            assert status["imageID"], "a real container ran the image"
            assert pod["status"]["podIP"].startswith("10.88.0.")
        # Peering: both replicas register in the ClusterKopfPeering (kopf lets the one of highest priority act).
        peers = eventually(
            lambda: (
                len(
                    s := json.loads(kubectl("get", "clusterkopfpeering", release, "-o", "json").stdout).get("status")
                    or {}
                )
                == 2
                and s
            ),
            60,
            "two peers in the ClusterKopfPeering",
        )
        assert len(peers) == 2

        # It contains a miner (a KWOK pod: what matters is that the in-cluster operator acts).
        make_policy(namespace)
        core.create_namespaced_pod(namespace, miner_pod("miner"))
        eventually(lambda: quarantined(core, namespace, "miner"), 60, "the miner quarantined by the chart's operator")
        eventually(lambda: incident_in_state(custom, namespace, "Contained"), 60, "Contained")

        # helm test: the Job's container runs the check for real on the real node.
        tested = helm("test", release, "-n", system, "--timeout", "3m", kubeconfig=KUBECONFIG)
        assert "Phase:          Succeeded" in tested.stdout
        print(f"chart Deployment Ready on {NODE} in {ready_s:.1f}s")
    finally:
        if installed and release_keeps_its_crds(release, system):
            helm("uninstall", release, "-n", system, "--wait", kubeconfig=KUBECONFIG, check=False)
        elif installed:
            kubectl("delete", "secret", "-n", system, "-l", f"owner=helm,name={release}", check=False)
            kubectl(
                "delete", "clusterrole,clusterrolebinding", f"{release}-minerguard", "--ignore-not-found", check=False
            )
        kubectl("delete", "clusterkopfpeering", release, "--ignore-not-found", check=False)
        restore_crd_metadata(crds_before)
        kubectl("delete", "namespace", system, "--ignore-not-found", "--wait=false", check=False)
