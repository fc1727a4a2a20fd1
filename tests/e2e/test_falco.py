"""Falco runtime events and PolicyReports on the real control plane: the chart's endpoint, token, certificate
and RBAC, for real.

The chart is rendered with ``falco.enabled=true`` into a fresh namespace: its ServiceAccount,
ClusterRole and bindings, the Role that lets it read its token Secret (and no other), the
generated token Secret and the generated TLS Secret are applied. The operator then runs as a
process under that ServiceAccount's token (so the Secret is read through RBAC by
resourceNames), serving the chart's certificate on 127.0.0.1. Events are POSTed as
falcosidekick (Bearer token) and as Falco's http_output (Basic credentials in the URL)
would, for the Stratum rule of falcosecurity/rules (see tests/falco_events.py).

The same operator writes PolicyReports (``policyReports.enabled``, the chart's ClusterRole for
them applied too): the PolicyReport CRD is installed first only if the cluster does not serve it
(from the Kyverno Go module, see hack/tools.sh), and the open incidents of each test's namespace
must show in its report.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.cluster import bindir
from tests.e2e.helpers import CLUSTER_DIR, consistently, eventually, kubectl
from tests.e2e.objects import incident_in_state, incidents, quarantined
from tests.e2e.operator_proc import OperatorProcess, free_port
from tests.e2e.test_admission import can_i, render
from tests.falco_events import CMDLINE, STRATUM_RULE, body, stratum_event

RUNTIME = {"runtime": {"rules": [STRATUM_RULE], "minimumPriority": "Warning"}}


@dataclass
class Endpoint:
    port: int
    host: str
    """The Service's DNS name, which the chart's certificate names."""
    ca: ssl.SSLContext
    token: str
    user: str

    def post(self, payload: bytes, authorization: str | None = "bearer") -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if authorization == "bearer":
            headers["Authorization"] = f"Bearer {self.token}"
        elif authorization == "basic":  # what Falco's http_output sends for https://falco:<token>@host/falco
            headers["Authorization"] = "Basic " + base64.b64encode(f"falco:{self.token}".encode()).decode()
        elif authorization is not None:
            headers["Authorization"] = authorization
        conn = _Connection(self.host, self.port, context=self.ca, timeout=10)
        try:
            conn.request("POST", "/falco", body=payload, headers=headers)
            res = conn.getresponse()
            return res.status, res.read().decode().strip()
        finally:
            conn.close()


class _Connection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, checking the certificate against the Service's name (as Falco in the cluster would)."""

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _kubeconfig(namespace: str, sa: str) -> Path:
    token = kubectl("create", "token", sa, "-n", namespace, "--duration", "2h").stdout.strip()
    ports = json.loads((CLUSTER_DIR / "ports.json").read_text())
    ca = base64.b64encode((CLUSTER_DIR / "pki" / "ca.crt").read_bytes()).decode()
    path = CLUSTER_DIR / f"kubeconfig-{namespace}"
    cluster = {"server": f"https://127.0.0.1:{ports['apiserver']}", "certificate-authority-data": ca}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "sa",
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def endpoint(cluster: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    namespace = f"minerguard-falco-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", namespace)
    if kubectl("get", "crd", "policyreports.wgpolicyk8s.io", check=False).returncode != 0:
        kubectl("apply", "--server-side", "-f", str(Path(bindir()) / "wgpolicyk8s.io_policyreports.yaml"))
        kubectl("wait", "--for=condition=Established", "crd/policyreports.wgpolicyk8s.io", "--timeout=60s")
    sets = ["fullnameOverride=mg-falco", "falco.enabled=true", "policyReports.enabled=true"]
    templates = ["serviceaccount", "clusterrole", "clusterrolebinding", "falco", "policyreports"]
    args = ["--namespace", namespace]
    args += [a for item in sets for a in ("--set", item)]
    args += [a for t in templates for a in ("--show-only", f"templates/{t}.yaml")]
    docs = render(*args)
    text = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    kubectl("apply", "-f", "-", stdin=text)
    sa = next(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
    secrets = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "Secret"}
    tls, token = secrets["mg-falco-falco-tls"], base64.b64decode(secrets["mg-falco-falco-token"]["token"]).decode()
    files = tmp_path_factory.mktemp("falco-tls")
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (files / key).write_bytes(base64.b64decode(tls[key]))
    port = free_port()
    proc = OperatorProcess(
        "falco-operator",
        extra_env={
            "KUBECONFIG": str(_kubeconfig(namespace, sa)),
            "MINERGUARD_NAMESPACE": namespace,
            "MINERGUARD_FALCO_ENABLED": "true",
            "MINERGUARD_FALCO_ADDRESS": "127.0.0.1",
            "MINERGUARD_FALCO_PORT": str(port),
            "MINERGUARD_FALCO_TLS_CERT": str(files / "tls.crt"),
            "MINERGUARD_FALCO_TLS_KEY": str(files / "tls.key"),
            "MINERGUARD_FALCO_TOKEN_SECRET": "mg-falco-falco-token",
            "MINERGUARD_FALCO_MAX_BODY": "8192",
            "MINERGUARD_POLICY_REPORTS": "true",
            "MINERGUARD_POLICY_REPORTS_INTERVAL": "1",
        },
    )
    proc.start()
    context = ssl.create_default_context(cafile=str(files / "ca.crt"))
    user = f"system:serviceaccount:{namespace}:{sa}"
    yield Endpoint(port, f"mg-falco-falco.{namespace}.svc", context, token, user)
    proc.stop()
    kubectl("delete", "-f", "-", stdin=text, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def innocent_pod(name: str) -> client.V1Pod:
    container = client.V1Container(name="app", image="busybox:1.36", command=["/bin/sh", "-c", "sleep 3600"])
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(containers=[container]))


def post_until_taken(endpoint: Endpoint, namespace: str, pod: str, authorization: str = "bearer") -> None:
    """POST fresh events until one is taken (the watch may not have delivered the new pod yet)."""

    def taken() -> bool:
        status, text = endpoint.post(body(stratum_event(namespace, pod)), authorization)
        assert status == 200 and text in ("accepted", "unknown pod"), (status, text)
        return text == "accepted"

    eventually(taken, 30, f"the event for Pod {namespace}/{pod} taken")


def report_results(custom: client.CustomObjectsApi, namespace: str) -> list[dict[str, Any]] | None:
    try:
        report = custom.get_namespaced_custom_object(
            "wgpolicyk8s.io", "v1alpha2", namespace, "policyreports", "minerguard"
        )
    except client.ApiException:
        return None
    return list(report.get("results") or []) or None


def test_only_its_token_secret_is_readable(endpoint: Endpoint) -> None:
    namespace = endpoint.user.split(":")[2]
    assert can_i(endpoint.user, "get", "secret/mg-falco-falco-token", "-n", namespace)
    assert not can_i(endpoint.user, "get", "secret/mg-falco-falco-tls", "-n", namespace)
    assert not can_i(endpoint.user, "list", "secrets", "-n", namespace)
    assert not can_i(endpoint.user, "get", "secrets", "-A")


def test_an_innocent_pod_is_quarantined_after_a_stratum_event(
    endpoint: Endpoint, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, make_policy: Any
) -> None:
    make_policy(namespace, **RUNTIME)
    core.create_namespaced_pod(namespace, innocent_pod("web"))
    consistently(lambda: not incidents(custom, namespace), 3, "an innocent spec: nothing happens")
    post_until_taken(endpoint, namespace, "web")
    eventually(lambda: quarantined(core, namespace, "web"), 30, "the pod quarantined on the Falco event")
    incident = eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "a Contained incident")
    [evidence] = incident["status"]["evidence"]
    assert (evidence["signal"], evidence["strength"], evidence["value"]) == ("runtime", "Strong", CMDLINE)
    assert f"Falco Critical '{STRATUM_RULE}'" in evidence["detail"]
    [result] = eventually(lambda: report_results(custom, namespace), 30, "the namespace's PolicyReport")
    assert (result["result"], result["severity"], result["source"]) == ("fail", "high", "minerguard")
    assert result["resources"][0]["kind"] == "Pod" and result["resources"][0]["name"] == "web"


def test_falco_http_output_with_basic_credentials_in_an_audit_policy_only_records(
    endpoint: Endpoint, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, make_policy: Any
) -> None:
    make_policy(namespace, mode="Audit", **RUNTIME)
    core.create_namespaced_pod(namespace, innocent_pod("batch"))
    post_until_taken(endpoint, namespace, "batch", authorization="basic")
    incident = eventually(lambda: incident_in_state(custom, namespace, "Detected"), 30, "a Detected incident")
    assert incident["spec"]["mode"] == "Audit"
    consistently(lambda: not quarantined(core, namespace, "batch"), 3, "an Audit policy never quarantines")
    [result] = eventually(lambda: report_results(custom, namespace), 30, "the namespace's PolicyReport")
    assert (result["result"], result["severity"], result["resources"][0]["name"]) == ("fail", "medium", "batch")


def test_unauthenticated_malformed_and_unknown_events_create_nothing(
    endpoint: Endpoint, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, make_policy: Any
) -> None:
    make_policy(namespace, **RUNTIME)
    core.create_namespaced_pod(namespace, innocent_pod("api"))
    good = body(stratum_event(namespace, "api"))
    assert endpoint.post(good, authorization=None)[0] == 401
    assert endpoint.post(good, authorization="Bearer not-the-token")[0] == 401
    assert endpoint.post(good, authorization="Basic " + base64.b64encode(b"falco:guess").decode())[0] == 401
    status, reason = endpoint.post(b'{"rule": "x", "priority": "Loud"}')
    assert status == 400 and reason.startswith("priority 'Loud' is not one of") and "\n" not in reason
    assert endpoint.post(b"x" * 9000)[0] == 413
    assert endpoint.post(body(stratum_event(namespace, "no-such-pod"))) == (200, "unknown pod")
    consistently(
        lambda: (
            not incidents(custom, namespace)
            and not quarantined(core, namespace, "api")
            and report_results(custom, namespace) is None
        ),
        5,
        "refused, malformed and unknown-pod events create nothing, not even a PolicyReport",
    )


def falco_docs(*sets: str) -> list[dict[str, Any]]:
    args = ["--namespace", "mg", "--set", "fullnameOverride=mg", "--show-only", "templates/falco.yaml"]
    for assignment in sets:
        args += ["--set", assignment]
    return render(*args)


def test_chart_tls_and_token_sources() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in falco_docs("falco.enabled=true")}
    assert kinds == {
        ("Service", "mg-falco"),
        ("Role", "mg-falco-token"),
        ("RoleBinding", "mg-falco-token"),
        ("Secret", "mg-falco-token"),
        ("Secret", "mg-falco-tls"),
    }
    managed = falco_docs(
        "falco.enabled=true",
        "falco.tls.source=certManager",
        "falco.tls.certManager.issuerRef.name=cluster-ca",
        "falco.token.existingSecret=my-token",
    )
    [certificate] = [d for d in managed if d["kind"] == "Certificate"]
    assert certificate["spec"]["secretName"] == "mg-falco-tls"
    assert "mg-falco.mg.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == "cluster-ca"
    assert not [d for d in managed if d["kind"] == "Secret"]  # the token and the certificate are not the chart's
    [role] = [d for d in managed if d["kind"] == "Role"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["my-token"], "verbs": ["get"]}
    ]
    [service] = [d for d in managed if d["kind"] == "Service"]
    assert service["spec"]["selector"]["minerguard.io/falco-endpoint"] == "active"


def test_chart_renders_nothing_of_the_endpoint_by_default() -> None:
    docs = render("--namespace", "mg", "--set", "fullnameOverride=mg")
    assert not [d for d in docs if "falco" in d["metadata"]["name"]]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not {e for e in env if e.startswith("MINERGUARD_FALCO_")}
