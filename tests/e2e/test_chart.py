"""The Helm chart (helm/minerguard): lint, rendering with every toggle, schema rejections, RBAC, alerts, install.

Rendering tests run `helm template` from the pinned helm. The install test runs
`helm install --wait`, `helm test` and `helm uninstall` against the shared local cluster
(its own namespace and release): the operator's pods and the test Job's pod are
KWOK-simulated (Running/Ready or Succeeded without a container), so the test also runs
the test Job's check script for real, as the operator's ServiceAccount. A second test
installs on a bare kube-apiserver of its own (no CRDs yet, nothing else running), which is
the only way to see a first install create the CRDs and the objects of those CRDs.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from minerguard.rbac import required_rules
from tests.e2e.cluster import bindir
from tests.e2e.helpers import KUBECONFIG, ROOT, eventually, kubectl

CHART = ROOT / "helm" / "minerguard"
CHECK_SCRIPT = CHART / "files" / "helm-test" / "check_install.py"
CRD_NAMES = ("minerpolicies.minerguard.io", "minerincidents.minerguard.io", "clusterkopfpeerings.kopf.dev")
SERVED_APIS = (
    "--api-versions",
    "kopf.dev/v1/ClusterKopfPeering",
    "--api-versions",
    "minerguard.io/v1alpha1/MinerPolicy",
)


@functools.cache
def helm_bin() -> str:
    return str(bindir() / "helm")


def helm(*args: str, kubeconfig: Path | str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [helm_bin(), *args]
    if kubeconfig is not None:
        cmd += ["--kubeconfig", str(kubeconfig)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    # Helm says, on every load, that it follows the chart's symlinks (files/crds, files/policies).
    res.stderr = "\n".join(line for line in res.stderr.splitlines() if "found symbolic link" not in line)
    if check and res.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({res.returncode}):\n{res.stderr}\n{res.stdout[-2000:]}")
    return res


def render(*args: str, release: str = "minerguard", namespace: str = "minerguard-system") -> list[dict[str, Any]]:
    out = helm("template", release, str(CHART), "--namespace", namespace, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def sets(*assignments: str) -> list[str]:
    """``--set`` arguments, one per ``key=value``."""
    return [arg for a in assignments for arg in ("--set", a)]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return dict(containers[0])


def env_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


def source_docs(pattern: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(ROOT.glob(pattern)):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def is_hook(doc: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


# --------------------------------------------------------------------------- lint and render


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "peering.enabled=false", "--set", "replicaCount=1"],
        ["--set", "crds.enabled=false", "--set", "policies.installDefaultPack=false", "--set", "tests.enabled=false"],
        ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"],
        ["--set", "prometheus.tokenSecret.name=prom-token", "--set", "prometheus.ca.secret=prom-ca"],
    ],
    ids=["defaults", "standalone", "no-crds-no-pack-no-tests", "monitoring", "prometheus-credentials"],
)
def test_helm_lint_is_clean(values: list[str]) -> None:
    res = helm("lint", "--strict", str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout


def test_defaults_render_a_hardened_operator_with_peering() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("CustomResourceDefinition") == 3
    assert kinds.count("MinerPolicy") == len(source_docs("manifests/policies/*.yaml"))
    for kind in ("Deployment", "ServiceAccount", "ClusterRoleBinding", "Service", "ClusterKopfPeering"):
        assert kinds.count(kind) == 1, kind
    # The operator's ClusterRole, and the two for people (view, aggregated; responder).
    assert sorted(r["metadata"]["name"] for r in of_kind(docs, "ClusterRole")) == [
        "minerguard",
        "minerguard-responder",
        "minerguard-view",
    ]
    view = next(r for r in of_kind(docs, "ClusterRole") if r["metadata"]["name"] == "minerguard-view")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert {v for rule in view["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")

    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    c = container(docs)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"])
    # kopf's health endpoint on 8080 serves all three probes.
    assert c["args"] == ["run", "--liveness", "http://0.0.0.0:8080/healthz"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    # A writable /tmp on a read-only root.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["tmp"] == "/tmp"
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]

    env = env_of(docs)
    assert env["MINERGUARD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["MINERGUARD_INSTANCE"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["MINERGUARD_PEERING"] == "minerguard" == one(docs, "ClusterKopfPeering")["metadata"]["name"]
    assert "MINERGUARD_PRIORITY" not in env  # the operator derives one per replica
    assert env["MINERGUARD_LOG_FORMAT"] == "json"
    assert env["MINERGUARD_LOG_LEVEL"] == "INFO"
    assert env["MINERGUARD_METRICS_PORT"] == "9090"
    assert env["MINERGUARD_DRY_RUN"] == "false"
    assert env["MINERGUARD_PROMETHEUS_TIMEOUT"] == "10"
    assert env["MINERGUARD_GUARD_MAX_NODES"] == "3"
    assert env["MINERGUARD_GUARD_MAX_PERCENT"] == "10"
    assert env["MINERGUARD_GUARD_MIN_SCHEDULABLE"] == "2"
    assert env["MINERGUARD_GUARD_EXCLUDED_NODES"] == "node-role.kubernetes.io/control-plane"
    assert env["MINERGUARD_GUARD_MAX_ACTIONS_PER_HOUR"] == "10"
    assert "MINERGUARD_PROMETHEUS_TOKEN_FILE" not in env and "MINERGUARD_PROMETHEUS_CA_FILE" not in env

    # The metrics Service selects the operator's pods, and only them (not the test Job's).
    svc = one(docs, "Service")
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    job = one(docs, "Job")
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not svc["spec"]["selector"].items() <= job_labels.items()
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_every_toggle_changes_what_it_says() -> None:
    standalone = render(*sets("peering.enabled=false", "replicaCount=1"))
    assert container(standalone)["args"] == ["run", "--standalone", "--liveness", "http://0.0.0.0:8080/healthz"]
    assert "MINERGUARD_PEERING" not in env_of(standalone)
    assert not of_kind(standalone, "ClusterKopfPeering") and not of_kind(standalone, "PodDisruptionBudget")
    assert (
        "clusterkopfpeerings.kopf.dev"
        not in one(standalone, "Job")["spec"]["template"]["spec"]["containers"][0]["args"]
    )

    named = render(*sets("peering.name="), release="edge")
    assert env_of(named)["MINERGUARD_PEERING"] == "edge" == one(named, "ClusterKopfPeering")["metadata"]["name"]
    assert not of_kind(render(*sets("peering.create=false")), "ClusterKopfPeering")

    assert not of_kind(render(*sets("crds.enabled=false")), "CustomResourceDefinition")
    unkept = of_kind(render(*sets("crds.keep=false")), "CustomResourceDefinition")
    assert len(unkept) == 3 and all(
        "helm.sh/resource-policy" not in (c["metadata"].get("annotations") or {}) for c in unkept
    )
    no_kopf = of_kind(render(*sets("crds.kopfPeering=false")), "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in no_kopf) == sorted(CRD_NAMES[:2])

    assert not of_kind(render(*sets("policies.installDefaultPack=false")), "MinerPolicy")
    audit = of_kind(render(*sets("policies.auditOnly=true")), "MinerPolicy")
    assert audit and {p["spec"]["mode"] for p in audit} == {"Audit"}

    creds = render(
        *sets(
            "prometheus.url=https://prometheus.monitoring.svc:9090",
            "prometheus.tokenSecret.name=prom-token",
            "prometheus.tokenSecret.key=bearer",
            "prometheus.ca.configMap=prom-ca",
        )
    )
    env = env_of(creds)
    assert env["MINERGUARD_PROMETHEUS_URL"] == "https://prometheus.monitoring.svc:9090"
    assert env["MINERGUARD_PROMETHEUS_TOKEN_FILE"] == "/var/run/secrets/minerguard/prometheus-token/bearer"
    assert env["MINERGUARD_PROMETHEUS_CA_FILE"] == "/etc/minerguard/prometheus-ca/ca.crt"
    volumes = {v["name"]: v for v in one(creds, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["prometheus-token"]["secret"]["secretName"] == "prom-token"
    assert volumes["prometheus-token"]["secret"]["items"] == [{"key": "bearer", "path": "bearer"}]
    assert volumes["prometheus-ca"]["configMap"]["name"] == "prom-ca"
    # The token is a mounted file: no Role on Secrets is needed, and none is rendered.
    assert not of_kind(creds, "Role") and not of_kind(creds, "RoleBinding")
    ca_secret = render(*sets("prometheus.ca.secret=prom-ca-s"))
    ca_volume = next(
        v for v in one(ca_secret, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "prometheus-ca"
    )
    assert ca_volume["secret"]["secretName"] == "prom-ca-s"

    # Helm's --set reads 25.5 as a string (the schema wants a number): fractions go through --set-json.
    tuned = render(
        *sets("dryRun=true", "logLevel=DEBUG", "logFormat=text", "guards.maxNodes=0"),
        *sets("guards.excludedNodeSelector=pool=system", "metrics.port=9191", "replicaCount=3"),
        *("--set-json", "guards.maxPercent=25.5", "--set-json", "prometheus.timeout=2.5"),
    )
    env = env_of(tuned)
    assert (env["MINERGUARD_DRY_RUN"], env["MINERGUARD_LOG_LEVEL"], env["MINERGUARD_LOG_FORMAT"]) == (
        "true",
        "DEBUG",
        "text",
    )
    assert (env["MINERGUARD_GUARD_MAX_NODES"], env["MINERGUARD_GUARD_MAX_PERCENT"]) == ("0", "25.5")
    assert env["MINERGUARD_GUARD_EXCLUDED_NODES"] == "pool=system"
    assert env["MINERGUARD_PROMETHEUS_TIMEOUT"] == "2.5"
    assert env["MINERGUARD_METRICS_PORT"] == "9191" and one(tuned, "Service")["spec"]["ports"][0]["port"] == 9191
    assert one(tuned, "Deployment")["spec"]["replicas"] == 3

    digest = "sha256:" + "ab" * 32
    assert container(render(*sets(f"image.digest={digest}")))["image"] == f"minerguard@{digest}"
    assert container(render(*sets("image.tag=dev")))["image"] == "minerguard:dev"

    monitoring = render(*sets("metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"))
    sm = one(monitoring, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= one(monitoring, "Service")["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    alerts = {r["alert"] for r in one(monitoring, "PrometheusRule")["spec"]["groups"][0]["rules"]}
    assert {"MinerGuardMinerDetected", "MinerGuardContainmentSuppressed", "MinerGuardMetricsUnavailable"} <= alerts
    bare = render(
        *sets(
            "metrics.service.enabled=false",
            "rbac.create=false",
            "serviceAccount.create=false",
            "serviceAccount.name=existing",
            "tests.enabled=false",
            "podDisruptionBudget.enabled=false",
        )
    )
    for kind in (
        "Service",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "Job",
        "ConfigMap",
        "PodDisruptionBudget",
    ):
        assert not of_kind(bare, kind), kind
    assert one(bare, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


def test_crds_are_rendered_from_the_single_source() -> None:
    rendered = {c["metadata"]["name"]: c for c in of_kind(render(), "CustomResourceDefinition")}
    sources = {c["metadata"]["name"]: c for c in source_docs("crds/*.yaml")}
    assert set(rendered) == set(sources) == set(CRD_NAMES)
    for name, crd in rendered.items():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert (sources[name]["metadata"].get("labels") or {}).items() <= crd["metadata"]["labels"].items()
        assert {k: v for k, v in crd.items() if k != "metadata"} == {
            k: v for k, v in sources[name].items() if k != "metadata"
        }


def test_policy_pack_is_the_repository_pack_with_the_release_namespace_excluded() -> None:
    rendered = {p["metadata"]["name"]: p for p in of_kind(render(namespace="sec-tools"), "MinerPolicy")}
    sources = {p["metadata"]["name"]: p for p in source_docs("manifests/policies/*.yaml")}
    assert sources and set(rendered) == set(sources)
    for name, policy in rendered.items():
        want = json.loads(json.dumps(sources[name]["spec"]))
        excluded = (want.get("scope") or {}).get("excludedNamespaces") or []
        want.setdefault("scope", {})["excludedNamespaces"] = [
            "sec-tools" if ns == "minerguard-system" else ns for ns in excluded
        ] + ([] if "minerguard-system" in excluded else ["sec-tools"])
        assert policy["spec"] == want, name
        assert "minerguard-system" not in policy["spec"]["scope"]["excludedNamespaces"]
        assert policy["metadata"]["labels"]["minerguard.io/pack"] == "default"


def test_custom_objects_are_hooks_only_while_their_api_is_not_served() -> None:
    # helm template knows no cluster: as on a first install, the objects come after the CRDs.
    fresh = render()
    for doc in of_kind(fresh, "ClusterKopfPeering") + of_kind(fresh, "MinerPolicy"):
        annotations = doc["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
        assert annotations["meta.helm.sh/release-name"] == "minerguard"
        assert annotations["meta.helm.sh/release-namespace"] == "minerguard-system"
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    served = render(*SERVED_APIS)
    assert of_kind(served, "ClusterKopfPeering") and of_kind(served, "MinerPolicy")
    assert not any(is_hook(d) for d in of_kind(served, "ClusterKopfPeering") + of_kind(served, "MinerPolicy"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["logLevel=LOUD"], "at '/logLevel': value must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'"),
        (["logFormat=xml"], "at '/logFormat': value must be one of 'json', 'text'"),
        (["guards.maxNodes=-1"], "at '/guards/maxNodes': minimum: got -1, want 0"),
        (["guards.maxPercent=150"], "at '/guards/maxPercent': maximum: got 150, want 100"),
        (["guards.minSchedulableNodes=0"], "at '/guards/minSchedulableNodes': minimum: got 0, want 1"),
        (["guards.maxActionsPerHour=-5"], "at '/guards/maxActionsPerHour': minimum: got -5, want 0"),
        (["guards.maxNodes=null"], "at '/guards': missing property 'maxNodes'"),
        (["replicaCount=two"], "at '/replicaCount': got string, want integer"),
        (["replicaCount=0"], "at '/replicaCount': minimum: got 0, want 1"),
        (["prometheus.timeout=0"], "at '/prometheus/timeout': minimum: got 0, want 0.1"),
        (["prometheus.url=ftp://prometheus"], "'ftp://prometheus' does not match pattern"),
        (["image.digest=sha256:abc"], "at '/image/digest'"),
        (["metrics.port=80"], "at '/metrics/port': minimum: got 80, want 1,024"),
        (["guards.maxnodes=3"], "at '/guards': additional properties 'maxnodes' not allowed"),
        (["replicaCount=2", "peering.enabled=false"], "replicaCount > 1 needs peering.enabled=true"),
        (["prometheus.ca.configMap=a", "prometheus.ca.secret=b"], "prometheus.ca: give either configMap or secret"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(values: list[str], message: str) -> None:
    args = [a for v in values for a in ("--set", v)]
    res = helm("template", "minerguard", str(CHART), *args, check=False)
    assert res.returncode != 0, f"{values} was accepted"
    assert message in res.stderr, res.stderr


# --------------------------------------------------------------------------- RBAC


def test_clusterrole_grants_exactly_the_operators_required_rules() -> None:
    docs = render(
        *sets(
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "prometheus.tokenSecret.name=prom-token",
            "prometheus.ca.secret=prom-ca",
        )
    )
    roles = [
        d
        for d in docs
        if d["kind"] in ("ClusterRole", "Role")
        and (d["metadata"].get("labels") or {}).get("minerguard.io/role-for") != "people"
    ]
    assert [r["kind"] for r in roles] == ["ClusterRole"], "the operator needs one ClusterRole and no Role"
    rules = roles[0]["rules"]
    triples = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert triples == required_rules(), (
        f"missing from the chart: {sorted(required_rules() - triples)}; "
        f"not needed: {sorted(triples - required_rules())}"
    )
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, "no resourceNames or nonResourceURLs expected"
        for key in ("apiGroups", "resources", "verbs"):
            assert not any("*" in item for item in rule[key]), f"wildcard in {rule}"
        assert not {"secrets", "secrets/status"} & set(rule["resources"]), f"secrets in {rule}"
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == roles[0]["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": one(docs, "ServiceAccount")["metadata"]["name"],
            "namespace": "minerguard-system",
        }
    ]


# --------------------------------------------------------------------------- alerts


def promtool() -> str:
    for candidate in (bindir() / "promtool", Path(shutil.which("promtool") or "/nonexistent")):
        if candidate.exists():
            return str(candidate)
    prometheus = (bindir() / "prometheus").resolve()
    sibling = prometheus.parent / "promtool"
    assert sibling.exists(), "promtool not found (it comes with the prometheus package hack/tools.sh installs)"
    return str(sibling)


def test_prometheus_rules_fire_when_they_should(tmp_path: Path) -> None:
    rule = one(render(*sets("metrics.prometheusRule.enabled=true")), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run([promtool(), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    annotations = {r["alert"]: r["annotations"] for r in rule["spec"]["groups"][0]["rules"]}

    def alert(name: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
        """The alerts expected at ``at``: their labels, and their annotations with those labels filled in."""

        def filled(text: str, lab: dict[str, str]) -> str:
            for key, value in lab.items():
                text = text.replace("{{ $labels." + key + " }}", value)
            assert "{{" not in text, f"annotation of {name} names a label the alert does not have: {text}"
            return text

        expected = [
            {"exp_labels": lab, "exp_annotations": {k: filled(v, lab) for k, v in annotations[name].items()}}
            for lab in labels
        ]
        return {"eval_time": at, "alertname": name, "exp_alerts": expected}

    detected = {
        "alertname": "MinerGuardMinerDetected",
        "severity": "critical",
        "policy": "miner-images",
        "mode": "Enforce",
    }
    suppressed = {"severity": "warning", "policy": "p", "action": "cordon", "guard": "MaxNodes"}
    failed = {"severity": "critical", "policy": "p", "action": "quarantine"}
    actions = "minerguard_containment_actions_total"
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # First detection at 5m: the series appears at 1 (increase() alone would miss it).
                    {
                        "series": 'minerguard_detections_total{policy="miner-images",mode="Enforce"}',
                        "values": "_x5 1x40",
                    },
                    # An old series that increases at 30m.
                    {"series": 'minerguard_detections_total{policy="old",mode="Audit"}', "values": "0x30 1x15"},
                    {
                        "series": 'minerguard_actions_suppressed_total{policy="p",action="cordon",guard="MaxNodes"}',
                        "values": "_x2 1x40",
                    },
                    {
                        "series": f'{actions}{{policy="p",action="quarantine",result="Failed"}}',
                        "values": "_x2 1x40",
                    },
                    {
                        "series": f'{actions}{{policy="p",action="quarantine",result="Succeeded"}}',
                        "values": "0+1x40",
                    },
                    # Prometheus unreachable from 0m on: one failed query a minute.
                    {"series": 'minerguard_promql_errors_total{signal="podCpu"}', "values": "0+1x40"},
                ],
                "alert_rule_test": [
                    alert("MinerGuardMinerDetected", "4m"),
                    alert("MinerGuardMinerDetected", "7m", {k: v for k, v in detected.items() if k != "alertname"}),
                    alert("MinerGuardMinerDetected", "32m", {"severity": "critical", "policy": "old", "mode": "Audit"}),
                    alert("MinerGuardMinerDetected", "28m"),  # unchanged for more than 10 minutes
                    alert("MinerGuardContainmentSuppressed", "3m", suppressed),
                    alert("MinerGuardContainmentSuppressed", "30m"),
                    alert("MinerGuardContainmentFailed", "3m", failed),  # never for result=Succeeded
                    alert("MinerGuardContainmentFailed", "30m"),
                    alert("MinerGuardMetricsUnavailable", "8m"),  # pending: for 10m
                    alert("MinerGuardMetricsUnavailable", "25m", {"severity": "warning", "signal": "podCpu"}),
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    res = subprocess.run([promtool(), "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------- packaging and install.yaml


def test_chart_packages_with_the_symlinked_files(tmp_path: Path) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    archive = tmp_path / "minerguard-0.1.0.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert all(not m.issym() for m in tar.getmembers()), "the package must hold the files, not links"
    for path in sorted(ROOT.glob("crds/*.yaml")):
        assert f"minerguard/files/crds/{path.name}" in names
    for path in sorted(ROOT.glob("manifests/policies/*.yaml")):
        assert f"minerguard/files/policies/{path.name}" in names
    from_dir = helm("template", "minerguard", str(CHART), "-n", "minerguard-system").stdout
    from_archive = helm("template", "minerguard", str(archive), "-n", "minerguard-system").stdout
    assert from_archive == from_dir


def test_install_yaml_is_rendered_from_the_chart(tmp_path: Path) -> None:
    fresh = tmp_path / "install.yaml"
    res = subprocess.run(
        ["make", "-s", "manifests", f"INSTALL_YAML={fresh}"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    committed = ROOT / "manifests" / "install.yaml"
    assert committed.read_text() == fresh.read_text(), "manifests/install.yaml is stale: run 'make manifests'"
    docs = [d for d in yaml.safe_load_all(committed.read_text()) if d]
    assert sorted(c["metadata"]["name"] for c in of_kind(docs, "CustomResourceDefinition")) == sorted(CRD_NAMES)
    assert not of_kind(docs, "MinerPolicy"), "the policy pack is applied from manifests/policies/"
    assert not any(is_hook(d) for d in docs), "kubectl apply knows no hooks"
    assert one(docs, "ClusterKopfPeering")["metadata"]["name"] == "minerguard"
    assert one(docs, "Deployment")["metadata"]["namespace"] == "minerguard-system"


# --------------------------------------------------------------------------- install on the local cluster


def sa_kubeconfig(tmp_path: Path, namespace: str, service_account: str) -> Path:
    """A kubeconfig that authenticates as ``service_account`` (a TokenRequest token), for the cluster of KUBECONFIG."""
    admin = yaml.safe_load(KUBECONFIG.read_text())
    token = kubectl("create", "token", service_account, "-n", namespace, "--duration", "10m").stdout.strip()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": service_account}}],
        "current-context": "sa",
    }
    path = tmp_path / f"{service_account}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_check(kubeconfig: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120
    )


def incident(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerIncident",
        "metadata": {"name": name},
        "spec": {"policy": "chart-test", "mode": "Audit", "workload": {"kind": "Pod", "name": "gone"}},
    }


def crd_metadata() -> dict[str, dict[str, dict[str, str]]]:
    out = json.loads(kubectl("get", "crd", *CRD_NAMES, "-o", "json").stdout)
    return {
        c["metadata"]["name"]: {
            "labels": c["metadata"].get("labels") or {},
            "annotations": c["metadata"].get("annotations") or {},
        }
        for c in out["items"]
    }


def restore_crd_metadata(before: dict[str, dict[str, dict[str, str]]]) -> None:
    """Take off the shared CRDs the labels and annotations the release added (the CRDs themselves stay)."""
    after = crd_metadata()
    for name, meta in after.items():
        added_labels = [k for k in meta["labels"] if k not in before[name]["labels"]]
        added_annotations = [k for k in meta["annotations"] if k not in before[name]["annotations"]]
        if added_labels:
            kubectl("label", "crd", name, *[f"{k}-" for k in added_labels])
        if added_annotations:
            kubectl("annotate", "crd", name, *[f"{k}-" for k in added_annotations])


def release_keeps_its_crds(release: str, namespace: str) -> bool:
    manifest = helm("get", "manifest", release, "-n", namespace, kubeconfig=KUBECONFIG, check=False).stdout
    crds = [d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "CustomResourceDefinition"]
    return bool(crds) and all(
        (c["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep" for c in crds
    )


def test_install_test_and_uninstall_on_the_local_cluster(cluster: dict[str, Any], tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"mgc-{suffix}", f"minerguard-chart-{suffix}"
    sa = f"{release}-minerguard"
    crds_before = crd_metadata()  # the session applied crds/; the release takes them over (--take-ownership)
    installed = False
    try:
        # The default pack stays out: MinerPolicies are cluster-wide, and other tests share this cluster.
        helm(
            "install", release, str(CHART), "--namespace", namespace, "--create-namespace",
            "--take-ownership", "--wait", "--timeout", "3m",
            "--set", f"peering.name={release}", "--set", "policies.installDefaultPack=false",
            "--set", f"prometheus.url={cluster['prometheus']}",
            kubeconfig=KUBECONFIG,
        )  # fmt: skip
        installed = True

        # The Deployment's 2 pods run on KWOK nodes (simulated: Running and Ready, no container).
        deploy = json.loads(kubectl("get", "deployment", sa, "-n", namespace, "-o", "json").stdout)
        assert deploy["status"].get("readyReplicas") == 2
        env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["MINERGUARD_PEERING"] == release and env["MINERGUARD_PROMETHEUS_URL"] == cluster["prometheus"]
        pods = json.loads(
            kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}", "-o", "json").stdout
        )
        assert {p["spec"]["nodeName"].startswith("kwok-node-") for p in pods["items"]} == {True}
        kubectl("get", "clusterkopfpeering", release)
        for name in CRD_NAMES:
            kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")

        # The helm-test check for real: the rendered Job's own arguments, as the operator's ServiceAccount.
        hooks = [
            d
            for d in yaml.safe_load_all(helm("get", "hooks", release, "-n", namespace, kubeconfig=KUBECONFIG).stdout)
            if d
        ]
        job = one(hooks, "Job")
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == sa
        job_container = job["spec"]["template"]["spec"]["containers"][0]
        assert job_container["command"] == ["python", "/opt/minerguard-test/check_install.py"]
        configmap = one(hooks, "ConfigMap")
        assert configmap["data"]["check_install.py"] == CHECK_SCRIPT.read_text().rstrip("\n")
        as_operator = sa_kubeconfig(tmp_path, namespace, sa)
        ok = run_check(as_operator, job_container["args"])
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert f"OK: 2 operator pod(s) Ready in {namespace}" in ok.stdout
        # ... and it does fail when something is missing.
        selector = f"app.kubernetes.io/instance={release}"
        too_many = run_check(
            as_operator, ["--namespace", namespace, "--selector", selector, "--replicas", "3", "--timeout", "0"]
        )
        assert too_many.returncode == 1 and "2 of 3 operator pods Ready" in too_many.stderr
        missing = run_check(as_operator, [*job_container["args"], "--crd", "nothings.example.com", "--timeout", "0"])
        assert missing.returncode == 1 and "CRD nothings.example.com does not exist" in missing.stderr

        # helm test: the Job's pod is KWOK-simulated, so its success here is simulated too.
        tested = helm("test", release, "-n", namespace, "--timeout", "2m", kubeconfig=KUBECONFIG)
        assert f"TEST SUITE:     {release}-minerguard-test" in tested.stdout
        assert "Phase:          Succeeded" in tested.stdout

        # A record that must survive the uninstall.
        kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(incident("kept-record")))
        assert release_keeps_its_crds(release, namespace), "refusing to uninstall: the CRDs are shared with other tests"
        out = helm("uninstall", release, "-n", namespace, "--wait", kubeconfig=KUBECONFIG).stdout
        installed = False
        for name in CRD_NAMES:
            assert f"[CustomResourceDefinition] {name}" in out
        kubectl("wait", "--for=condition=Established", *[f"crd/{n}" for n in CRD_NAMES], "--timeout=10s")
        kept = json.loads(kubectl("get", "minerincident", "kept-record", "-n", namespace, "-o", "json").stdout)
        assert kept["spec"]["policy"] == "chart-test"
        eventually(
            lambda: kubectl("get", "deployment", sa, "-n", namespace, check=False).returncode != 0,
            60,
            "Deployment gone",
        )
        assert kubectl("get", "clusterrole", sa, check=False).returncode != 0
        assert kubectl("get", "clusterkopfpeering", release, check=False).returncode != 0
    finally:
        if installed and release_keeps_its_crds(release, namespace):
            helm("uninstall", release, "-n", namespace, "--wait", kubeconfig=KUBECONFIG, check=False)
        elif installed:  # never let an uninstall delete the shared CRDs: forget the release, delete its objects
            kubectl("delete", "secret", "-n", namespace, "-l", f"owner=helm,name={release}", check=False)
            kubectl("delete", "clusterrole,clusterrolebinding", sa, "--ignore-not-found", check=False)
            kubectl("delete", "clusterkopfpeering", release, "--ignore-not-found", check=False)
        restore_crd_metadata(crds_before)
        kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)


# --------------------------------------------------------------------------- first install on a bare API server


def load_cluster_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("minerguard_hack_cluster", ROOT / "hack" / "cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bare_apiserver(cluster: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """etcd and kube-apiserver of their own (hack/cluster.py's commands, in tmp_path): no CRD, no other user."""
    script = load_cluster_script()
    script.STATE_DIR = tmp_path / "bare"  # every path, pid file and log of the script lives under it
    ports = {"etcd": free_port(), "etcd_peer": free_port(), "apiserver": free_port()}
    script.make_certs(script.STATE_DIR / "pki")
    kubeconfig = script.STATE_DIR / "kubeconfig"
    script.write_kubeconfig(kubeconfig, script.STATE_DIR / "pki", ports["apiserver"])
    try:
        for component in ("etcd", "kube-apiserver"):
            script.start(component, ports)
            script.wait_ready(component, ports)
        yield kubeconfig
    finally:
        for component in ("kube-apiserver", "etcd"):
            script.stop(component, timeout=10)


def test_first_install_creates_crds_then_their_objects_and_uninstall_keeps_the_crds(bare_apiserver: Path) -> None:
    kc = str(bare_apiserver)

    def k(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(bindir() / "kubectl"), "--kubeconfig", kc, *args], input=stdin, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        return res

    def names(kind: str) -> set[str]:
        return {i["metadata"]["name"] for i in json.loads(k("get", kind, "-o", "json").stdout)["items"]}

    assert not names("crd")
    pack = {p["metadata"]["name"] for p in source_docs("manifests/policies/*.yaml")}
    # No controller-manager runs here, so no pod ever comes: no --wait.
    out = helm("install", "minerguard", str(CHART), "-n", "sec-tools", "--create-namespace", kubeconfig=kc).stdout
    assert "were created by a post-install hook" in out
    assert names("crd") == set(CRD_NAMES)
    assert names("clusterkopfpeerings") == {"minerguard"}
    assert names("minerpolicies") == pack
    policies = json.loads(k("get", "minerpolicies", "-o", "json").stdout)["items"]
    assert all("sec-tools" in p["spec"]["scope"]["excludedNamespaces"] for p in policies)
    manifest_kinds = {
        d["kind"]
        for d in yaml.safe_load_all(helm("get", "manifest", "minerguard", "-n", "sec-tools", kubeconfig=kc).stdout)
        if d
    }
    assert "MinerPolicy" not in manifest_kinds and "CustomResourceDefinition" in manifest_kinds

    # The next upgrade renders them as release objects and Helm adopts them.
    out = helm("upgrade", "minerguard", str(CHART), "-n", "sec-tools", "--reuse-values", kubeconfig=kc).stdout
    assert "post-install hook" not in out
    manifest = [
        d
        for d in yaml.safe_load_all(helm("get", "manifest", "minerguard", "-n", "sec-tools", kubeconfig=kc).stdout)
        if d
    ]
    assert {p["metadata"]["name"] for p in of_kind(manifest, "MinerPolicy")} == pack
    assert one(manifest, "ClusterKopfPeering")["metadata"]["name"] == "minerguard"

    k("apply", "-n", "sec-tools", "-f", "-", stdin=yaml.safe_dump(incident("kept-record")))
    out = helm("uninstall", "minerguard", "-n", "sec-tools", kubeconfig=kc).stdout
    assert "These resources were kept due to the resource policy" in out
    assert names("crd") == set(CRD_NAMES)
    assert not names("minerpolicies") and not names("clusterkopfpeerings")
    kept = json.loads(k("get", "minerincident", "kept-record", "-n", "sec-tools", "-o", "json").stdout)
    assert kept["spec"]["policy"] == "chart-test"
