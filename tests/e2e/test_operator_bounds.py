"""The operator's own blast radius: its ServiceAccount's token can write only the fields minerguard owns.

The chart's ``bound-operator-*`` ValidatingAdmissionPolicies match requests from the operator's
ServiceAccount only. The test plays someone who stole that token: with it (the chart's ServiceAccount,
ClusterRole and binding, a TokenRequest token), changing a pod's image, a Deployment's pod template, a
node's labels or a tenant NetworkPolicy's rules is refused by the apiserver, although RBAC grants the
verb. The operator itself, run with the same token under the same policies, still quarantines a miner
behind a tenant's allow-all policy and releases it (its label, exclusion and namespace-mark writes pass).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.cluster import helm_template, tool
from tests.e2e.helpers import ROOT, eventually, kubectl
from tests.e2e.objects import allow_all, deployment, incident_in_state, miner_pod, quarantined
from tests.e2e.operator_proc import OperatorProcess
from tests.e2e.test_admission import operator_account  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e


@pytest.fixture
def bounds(operator_account: tuple[str, Path], request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:  # noqa: F811
    """The chart's bound-operator policies for the operator_account's ServiceAccount, in force (rendered with the
    same chart values as the account, the indirect parameter of ``operator_account``)."""
    user, _ = operator_account
    _, _, sa_namespace, _sa = user.split(":")
    values = [arg for kv in request.node.callspec.params.get("operator_account", ()) for arg in ("--set", kv)]
    docs = helm_template(
        ROOT / "helm" / "minerguard",
        "--namespace",
        sa_namespace,
        *values,
        "--set",
        "fullnameOverride=mg-lp",
        "--show-only",
        "templates/admission-operator.yaml",
    )
    assert docs and all(user in json.dumps(d) for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    kubectl("apply", "-f", "-", stdin=text)
    yield operator_account
    kubectl("delete", "-f", "-", stdin=text, check=False)


def with_token(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("operator_account", [["scaleOwner.enabled=true"]], indirect=True, ids=["scaleOwner"])
def test_the_operators_token_can_write_only_what_minerguard_owns(
    bounds: tuple[str, Path],
    paused_session_operator: None,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    _, kubeconfig = bounds
    networking.create_namespaced_network_policy(namespace, allow_all())
    web = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx:1.27")]),
    )
    core.create_namespaced_pod(namespace, web)
    apps.create_namespaced_deployment(namespace, deployment("shop", 1))
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "batch", "namespace": namespace},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(job))
    node = core.list_node().items[0].metadata.name

    def refused(*args: str) -> None:
        def check() -> bool:
            # A server-side dry run until the new policy is in force: a write that landed before it would
            # make every later try a no-op, which the policy rightly lets through.
            res = with_token(kubeconfig, *args, "--dry-run=server")
            assert "Forbidden" in res.stderr or res.returncode == 0, res.stderr  # RBAC grants the verb
            return res.returncode != 0 and "minerguard's ServiceAccount may" in res.stderr

        eventually(check, 20, f"refused: {' '.join(args)}")
        res = with_token(kubeconfig, *args)
        assert res.returncode != 0 and "minerguard's ServiceAccount may" in res.stderr, res.stderr

    image = json.dumps({"spec": {"containers": [{"name": "c", "image": "evil/miner:latest"}]}})
    refused("patch", "pod", "web", "-n", namespace, "-p", image)
    refused("label", "pod", "web", "-n", namespace, "team=red")
    template = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "evil"}]}}}})
    refused("patch", "deployment", "shop", "-n", namespace, "-p", template)
    refused("label", "node", node, "stolen=yes")
    refused("taint", "node", node, "evil=yes:NoSchedule")
    rules = json.dumps({"spec": {"ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}})
    refused("patch", "networkpolicy", "allow-all", "-n", namespace, "-p", rules)
    refused("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=privileged")
    refused("patch", "job", "batch", "-n", namespace, "-p", '{"spec": {"parallelism": 50}}')
    # What minerguard owns passes: its own label on a pod, scaling a workload, suspending a Job, cordoning a
    # node with its annotation and taint (and undoing each).
    allowed = [
        ("label", "pod", "web", "-n", namespace, "minerguard.io/probe=1"),
        ("scale", "deployment", "shop", "-n", namespace, "--replicas=0"),
        ("patch", "job", "batch", "-n", namespace, "-p", '{"spec": {"suspend": true}}'),
        ("annotate", "deployment", "shop", "-n", namespace, "minerguard.io/scaled-by=t"),
        ("cordon", node),
        ("annotate", "node", node, "minerguard.io/cordoned=t"),
        ("taint", "node", node, "minerguard.io/suspect=t:NoSchedule"),
        ("taint", "node", node, "minerguard.io/suspect-"),
        ("annotate", "node", node, "minerguard.io/cordoned-"),
        ("uncordon", node),
    ]
    for args in allowed:
        res = with_token(kubeconfig, *args)
        assert res.returncode == 0, f"{' '.join(args)}: {res.stderr}"

    # The operator, with the same token under the same policies, does its whole quarantine job.
    restricted = OperatorProcess("operator-bounded", extra_env={"KUBECONFIG": str(kubeconfig)})
    start = restricted.log_size()
    restricted.start()
    try:
        make_policy(namespace)
        core.create_namespaced_pod(namespace, miner_pod("miner"))
        found = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "contained under bounds")
        assert quarantined(core, namespace, "miner")
        custom.patch_namespaced_custom_object(
            "minerguard.io",
            "v1alpha1",
            namespace,
            "minerincidents",
            found["metadata"]["name"],
            {"spec": {"release": True, "releasedBy": "t"}},
        )
        eventually(lambda: not quarantined(core, namespace, "miner"), 30, "released under bounds")
        log = restricted.log_since(start)
        assert "minerguard's ServiceAccount may" not in log, log[-2000:]
    finally:
        restricted.stop()
