"""Fixtures for tests against the real local control plane.

The session brings the cluster up once (or reuses one that runs), applies the
project's CRDs from ``crds/``, gives each test its own namespace, and stops the
cluster at the end when it started it. A test that cannot get a cluster fails
with the reason; nothing is ever skipped.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.e2e import cluster as local_cluster
from tests.e2e.bare import bare_apiserver  # noqa: F401 - a fixture for every e2e test module
from tests.e2e.helpers import CLUSTER_DIR, KUBECONFIG, ROOT, eventually, kubectl
from tests.e2e.objects import GROUP, VERSION, policy_body, ready
from tests.e2e.operator_proc import OperatorProcess
from tests.e2e.realnode import RealNode, ensure_real_node


@pytest.fixture(scope="session")
def cluster() -> Iterator[dict[str, Any]]:
    try:
        started = local_cluster.ensure_cluster()
    except Exception as exc:  # noqa: BLE001 - turned into a test failure with the reason
        pytest.fail(f"no local cluster: {exc}", pytrace=False)
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    ports = json.loads((CLUSTER_DIR / "ports.json").read_text())
    yield {"ports": ports, "kubeconfig": str(KUBECONFIG), "prometheus": f"http://127.0.0.1:{ports['prometheus']}"}
    if started:
        local_cluster.teardown_cluster()


@pytest.fixture(scope="session")
def api(cluster: dict[str, Any]) -> client.ApiClient:
    return config.new_client_from_config(config_file=cluster["kubeconfig"])


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(scope="session")
def networking(api: client.ApiClient) -> client.NetworkingV1Api:
    return client.NetworkingV1Api(api)


@pytest.fixture(scope="session")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="session")
def prometheus_url(cluster: dict[str, Any]) -> str:
    return str(cluster["prometheus"])


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    base = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"minerguard-test": "1"})))
    eventually(
        lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
        60,
        f"the default service account in {name}",
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def operator(cluster: dict[str, Any]) -> Iterator[OperatorProcess]:
    """The operator, running as a process for the whole session (tests scope their policies to their namespace)."""
    kubectl("create", "namespace", "minerguard-system", check=False)
    proc = OperatorProcess("operator")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def make_policy(custom: client.CustomObjectsApi) -> Iterator[Any]:
    created: list[str] = []

    def make(namespace: str, mode: str = "Enforce", spec: dict[str, Any] | None = None, **signals: Any) -> str:
        """A MinerPolicy scoped to ``namespace`` (or with the given whole ``spec``), Ready before it returns."""
        name = f"p-{namespace}"[:50] + f"-{uuid.uuid4().hex[:4]}"
        body = policy_body(name, namespace, mode, **signals)
        if spec is not None:
            body["spec"] = spec
        custom.create_cluster_custom_object(GROUP, VERSION, "minerpolicies", body)
        created.append(name)
        eventually(lambda: ready(custom, name), 30, f"MinerPolicy {name} Ready")
        return name

    yield make
    for name in created:
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, "minerpolicies", name)
        except ApiException:
            pass


@pytest.fixture
def paused_session_operator(operator: OperatorProcess) -> Iterator[None]:
    """Stop the session's standalone operator so only the HA pair acts; start it again afterwards."""
    operator.stop()
    yield
    operator.start()


@pytest.fixture(scope="session")
def real_node(cluster: dict[str, Any]) -> RealNode:
    """The real node real-0 in the session's cluster, with the operator's image imported."""
    try:
        return ensure_real_node()
    except Exception as exc:  # noqa: BLE001 - turned into a test failure with the reason
        pytest.fail(f"no real node: {exc}", pytrace=False)
