"""The Helm charts (helm/minerguard, helm/minerguard-policies): lint, rendering, schema, RBAC, alerts, lifecycle.

Rendering tests run `helm template` from the pinned helm, as against the local cluster
(its Kubernetes version and APIs, see ``template_args``). The install test runs
`helm install --wait`, `helm test` and `helm uninstall` against the shared local cluster
(its own namespace and release): the operator's pods and the test Job's pod are
KWOK-simulated (Running/Ready or Succeeded without a container), so the test also runs
the test Job's check script for real, as the operator's ServiceAccount. The lifecycle test
installs both charts on a bare kube-apiserver of its own (no CRDs yet, nothing else
running), which is the only way to see a first install create the CRDs and the objects of
those CRDs; there it upgrades, rolls each release back to every revision and uninstalls,
with the operator running as a process, and checks after each step that detection is on.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard.actions.enforcement import backends_for, cleanup_for
from minerguard.rbac import required_rules
from tests.e2e.bare import Bare
from tests.e2e.cluster import bindir, kube_version, template_args
from tests.e2e.helpers import KUBECONFIG, ROOT, eventually, kubectl

CHART = ROOT / "helm" / "minerguard"
POLICIES_CHART = ROOT / "helm" / "minerguard-policies"
DEFAULT_IMAGE = "ghcr.io/minerguard/minerguard"
CHECK_SCRIPT = CHART / "files" / "helm-test" / "check_install.py"
CRD_NAMES = ("minerpolicies.minerguard.io", "minerincidents.minerguard.io", "clusterkopfpeerings.kopf.dev")
BOUND_PARTS = ("pods", "nodes", "workloads", "jobs", "namespaces", "networkpolicies", "admintier")
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


def render(
    *args: str, release: str = "minerguard", namespace: str = "minerguard-system", chart: Path = CHART
) -> list[dict[str, Any]]:
    out = helm("template", release, str(chart), "--namespace", namespace, *template_args(), *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def render_pack(*args: str, namespace: str = "minerguard-system") -> list[dict[str, Any]]:
    return render(*args, release="minerguard-policies", namespace=namespace, chart=POLICIES_CHART)


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
        ["--set", "crds.enabled=false", "--set", "tests.enabled=false"],
        ["--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"],
        ["--set", "prometheus.tokenSecret.name=prom-token", "--set", "prometheus.ca.secret=prom-ca"],
    ],
    ids=["defaults", "standalone", "no-crds-no-tests", "monitoring", "prometheus-credentials"],
)
def test_helm_lint_is_clean(values: list[str]) -> None:
    res = helm("lint", "--strict", "--kube-version", kube_version(), str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout


@pytest.mark.parametrize("values", [[], ["--set", "mode=Enforce"]], ids=["audit", "enforce"])
def test_policies_chart_lints_clean(values: list[str]) -> None:
    res = helm("lint", "--strict", "--kube-version", kube_version(), str(POLICIES_CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout


def test_both_charts_need_kubernetes_1_30() -> None:
    for chart in (CHART, POLICIES_CHART):
        assert yaml.safe_load((chart / "Chart.yaml").read_text())["kubeVersion"] == ">=1.30.0-0"
        old = helm("template", "x", str(chart), "--kube-version", "1.29.9", check=False)
        assert old.returncode != 0 and "is incompatible with Kubernetes v1.29.9" in old.stderr, old.stderr
        assert helm("template", "x", str(chart), "--kube-version", "1.30.0-eks-1").returncode == 0


def test_defaults_render_a_hardened_operator_with_peering() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("CustomResourceDefinition") == 3
    assert "MinerPolicy" not in kinds, "the policy pack is the chart minerguard-policies"
    for kind in (
        "Deployment",
        "ServiceAccount",
        "ClusterRoleBinding",
        "Service",
        "ClusterKopfPeering",
    ):
        assert kinds.count(kind) == 1, kind
    assert kinds.count("ValidatingAdmissionPolicy") == kinds.count("ValidatingAdmissionPolicyBinding") == 10
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
    assert c["image"] == f"{DEFAULT_IMAGE}:0.1.0"
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
    assert container(render(*sets(f"image.digest={digest}")))["image"] == f"{DEFAULT_IMAGE}@{digest}"
    assert container(render(*sets("image.tag=dev")))["image"] == f"{DEFAULT_IMAGE}:dev"
    assert container(render(*sets("image.repository=registry.example.com/mg")))["image"] == (
        "registry.example.com/mg:0.1.0"
    )

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


def pack_spec(source: dict[str, Any], operator_namespace: str) -> dict[str, Any]:
    """A pack policy's spec as the policies chart must render it: the operator's namespace excluded."""
    want: dict[str, Any] = json.loads(json.dumps(source["spec"]))
    excluded = (want.get("scope") or {}).get("excludedNamespaces") or []
    want.setdefault("scope", {})["excludedNamespaces"] = [
        operator_namespace if ns == "minerguard-system" else ns for ns in excluded
    ] + ([] if "minerguard-system" in excluded else [operator_namespace])
    return want


def test_policy_pack_is_the_repository_pack_in_audit_with_the_operator_namespace_excluded() -> None:
    sources = {p["metadata"]["name"]: p for p in source_docs("manifests/policies/*.yaml")}
    enforce = {
        p["metadata"]["name"]: p for p in of_kind(render_pack("--set", "mode=Enforce", namespace="sec"), "MinerPolicy")
    }
    audit = {p["metadata"]["name"]: p for p in of_kind(render_pack(namespace="sec"), "MinerPolicy")}
    assert sources and set(enforce) == set(audit) == set(sources)
    assert {p["spec"]["mode"] for p in sources.values()} == {"Audit", "Enforce"}
    for name, policy in enforce.items():
        # Enforce: every policy in the mode the pack gives it (CPU saturation alone stays Audit).
        assert policy["spec"] == pack_spec(sources[name], "sec"), name
        assert policy["metadata"]["labels"]["minerguard.io/pack"] == "default"
        assert policy["metadata"]["labels"]["app.kubernetes.io/instance"] == "minerguard-policies"
        assert not is_hook(policy), "ordinary release objects: rollback and uninstall treat them as such"
        # Audit, the default: the same policy, reporting only.
        assert audit[name]["spec"] == {**pack_spec(sources[name], "sec"), "mode": "Audit"}, name
    other = of_kind(render_pack(*sets("operatorNamespace=mg"), namespace="sec"), "MinerPolicy")
    assert all("mg" in p["spec"]["scope"]["excludedNamespaces"] for p in other)
    assert all("sec" not in p["spec"]["scope"]["excludedNamespaces"] for p in other)
    fewer = of_kind(render_pack(*sets("exclude={miner-images}")), "MinerPolicy")
    assert {p["metadata"]["name"] for p in fewer} == set(sources) - {"miner-images"}
    wrong = helm("template", "p", str(POLICIES_CHART), *template_args(), *sets("exclude={nope}"), check=False)
    assert wrong.returncode != 0 and "exclude: nope is not a policy of the pack" in wrong.stderr


def test_peering_is_always_a_hook_recreated_after_install_upgrade_and_rollback() -> None:
    # Served or not (first install), never an object of the release manifest: see templates/peering.yaml.
    for docs in (render(), render(*SERVED_APIS)):
        peering = one(docs, "ClusterKopfPeering")
        assert peering["metadata"]["annotations"] == {
            "helm.sh/hook": "post-install,post-upgrade,post-rollback",
            "helm.sh/hook-weight": "0",
            "helm.sh/hook-delete-policy": "before-hook-creation",
        }
        assert peering["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert not of_kind(render(*sets("peering.create=false")), "ClusterKopfPeering")


def notes(tmp_path: Path, *args: str) -> str:
    """The chart's NOTES.txt as Helm renders it for these arguments (`helm template` leaves NOTES out).

    A copy of the chart gets one more template, a ConfigMap whose data is NOTES.txt rendered
    with `tpl` in the same context, so `--kube-version` and `--api-versions` apply to it.
    """
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy, symlinks=False)
    (copy / "files" / "notes.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (copy / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n"
        '  notes: {{ tpl (.Files.Get "files/notes.txt") . | quote }}\n'
    )
    out = helm(
        "template", "minerguard", str(copy), "-n", "minerguard-system", *args, "--show-only", "templates/zz-notes.yaml"
    )
    return str(yaml.safe_load(out.stdout)["data"]["notes"])


def test_admission_policy_only_where_the_cluster_serves_it(tmp_path: Path) -> None:
    served = render()
    assert (
        len(of_kind(served, "ValidatingAdmissionPolicy"))
        == len(of_kind(served, "ValidatingAdmissionPolicyBinding"))
        == 10
    )
    assert "is NOT installed" not in notes(tmp_path / "served", *template_args())
    # A cluster whose discovery does not list admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy.
    bare_args = ("--kube-version", kube_version())
    not_served = [d for d in yaml.safe_load_all(helm("template", "m", str(CHART), *bare_args).stdout) if d]
    assert not of_kind(not_served, "ValidatingAdmissionPolicy")
    assert not of_kind(not_served, "ValidatingAdmissionPolicyBinding")
    text = notes(tmp_path / "not-served", *bare_args)
    assert "does not serve admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy" in text
    assert "is NOT installed" in text
    # Turned off on purpose: neither the policy nor the note.
    assert not of_kind(render(*sets("admissionPolicy.enabled=false")), "ValidatingAdmissionPolicy")
    assert "is NOT installed" not in notes(tmp_path / "off", *bare_args, *sets("admissionPolicy.enabled=false"))


def test_schema_accepts_subchart_keys_and_null_security_contexts(tmp_path: Path) -> None:
    as_dependency = render(*sets("enabled=true"), "--set-json", 'global={"imageRegistry":"r.example.com"}')
    assert one(as_dependency, "Deployment")
    assert of_kind(render_pack(*sets("enabled=true"), "--set-json", 'global={"x":1}'), "MinerPolicy")
    # OpenShift's restricted SCC assigns the user and group: values.yaml says to set these to null.
    nulls = tmp_path / "openshift.yaml"
    nulls.write_text("securityContext: null\npodSecurityContext: null\n")
    for args in (["-f", str(nulls)], ["--set", "securityContext=null", "--set", "podSecurityContext=null"]):
        docs = render(*args)
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        sc = container(docs)["securityContext"]
        assert "runAsUser" not in sc and "runAsGroup" not in sc and sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
        job_pod = one(docs, "Job")["spec"]["template"]["spec"]
        assert "runAsUser" not in job_pod["securityContext"]
    fields = render(*sets("securityContext.runAsUser=null", "securityContext.fsGroup=null"))
    assert one(fields, "Deployment")["spec"]["template"]["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    extra = render("--set-json", 'podSecurityContext={"supplementalGroups":[4000],"runAsUser":0}')
    pod_sc = one(extra, "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["supplementalGroups"] == [4000] and pod_sc["runAsUser"] == 65532, "no way around non-root"


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
        (["enabled=yes"], "at '/enabled': got string, want boolean"),
        (["securityContext=root"], "at '/securityContext': got string, want null or object"),
        (["policies.auditOnly=true"], "additional properties 'policies' not allowed"),
        (["prometheus.ca.configMap=a", "prometheus.ca.secret=b"], "prometheus.ca: give either configMap or secret"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(values: list[str], message: str) -> None:
    args = [a for v in values for a in ("--set", v)]
    res = helm("template", "minerguard", str(CHART), *template_args(), *args, check=False)
    assert res.returncode != 0, f"{values} was accepted"
    assert message in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["mode=enforce"], "at '/mode': value must be one of 'Audit', 'Enforce'"),
        (["mode=null"], "missing property 'mode'"),
        (["operatorNamespace=Bad_NS"], "at '/operatorNamespace'"),
        (["auditOnly=true"], "additional properties 'auditOnly' not allowed"),
    ],
)
def test_bad_pack_values_are_rejected(values: list[str], message: str) -> None:
    res = helm("template", "p", str(POLICIES_CHART), *template_args(), *sets(*values), check=False)
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


@pytest.mark.parametrize(
    ("backend", "migrate"),
    [
        ("networkPolicy", True),
        ("adminNetworkPolicy", True),
        ("adminNetworkPolicy", False),
        ("cilium", False),
        ("calico", False),
    ],
)
def test_clusterrole_grants_only_the_chosen_enforcement_backends(backend: str, migrate: bool) -> None:
    """enforcement.backend renders the writes of that backend only (plus networkPolicy's while migrating):
    with an admin-tier backend alone the operator cannot write a tenant's NetworkPolicy or namespace."""
    docs = render(
        *sets(f"enforcement.backend={backend}", f"enforcement.migrateFromNetworkPolicy={str(migrate).lower()}")
    )
    role = next(d for d in of_kind(docs, "ClusterRole") if "people" not in str(d["metadata"].get("labels")))
    triples = {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }
    assert triples == required_rules(backends_for(backend, migrate), cleanup=cleanup_for(backend))
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["MINERGUARD_ENFORCEMENT"] == backend
    if backend != "networkPolicy" and not migrate:
        assert ("networking.k8s.io", "networkpolicies", "patch") not in triples


def clusterrole_triples(docs: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    role = next(d for d in of_kind(docs, "ClusterRole") if "people" not in str(d["metadata"].get("labels")))
    return {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


@pytest.mark.parametrize("enabled", [False, True])
def test_scale_owner_rbac_and_admission_allowance_only_when_enabled(enabled: bool) -> None:
    """scaleOwner.enabled renders the workload writes (RBAC derived from the action registry) and the
    bound-operator allowance to scale or suspend; off (the default), the operator's token may change no workload."""
    docs = render(*(sets("scaleOwner.enabled=true") if enabled else []))
    triples = clusterrole_triples(docs)
    assert triples == required_rules(enabled={"scaleOwner"} if enabled else ())
    writes = {t for t in triples if t[0] in ("apps", "batch") and t[2] != "get"}
    assert bool(writes) == enabled
    assert ("apps", "deployments/scale", "patch") in triples if enabled else not writes
    assert env_of(docs)["MINERGUARD_SCALE_OWNER"] == str(enabled).lower()
    vaps = {d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in of_kind(docs, "ValidatingAdmissionPolicy")}
    for part, allowance in (("workloads", "variables.subResource == 'scale'"), ("jobs", "request.resource.resource")):
        expressions = [v["expression"] for v in vaps[part]["spec"]["validations"]]
        assert any(allowance in e for e in expressions) == enabled, (part, expressions)
        if not enabled:
            assert expressions == ["false"], expressions


@pytest.mark.parametrize("migrate", [True, False])
def test_back_to_network_policy_keeps_only_get_and_delete_on_the_old_admin_policies(migrate: bool) -> None:
    from minerguard.actions.enforcement import cleanup_for

    docs = render(
        *sets("enforcement.backend=networkPolicy", f"enforcement.migrateFromAdminTier={str(migrate).lower()}")
    )
    triples = clusterrole_triples(docs)
    assert triples == required_rules(backends_for("networkPolicy"), cleanup=cleanup_for("networkPolicy", migrate))
    assert not {t for t in triples if t[0] == "policy.networking.k8s.io" and t[2] in ("create", "patch")}


def test_the_allow_list_reaches_the_operator() -> None:
    docs = render(*sets("enforcement.allow.dns=true", "enforcement.allow.forensicsNamespace=forensics"))
    env = env_of(docs)
    assert (env["MINERGUARD_ENFORCEMENT_ALLOW_DNS"], env["MINERGUARD_ENFORCEMENT_ALLOW_NAMESPACE"]) == (
        "true",
        "forensics",
    )
    assert env_of(render())["MINERGUARD_ENFORCEMENT_ALLOW_DNS"] == "false"
    bad = helm("template", "m", str(CHART), *sets("enforcement.allow.forensicsNamespace=kube-system"), check=False)
    assert bad.returncode != 0 and "forensicsNamespace" in bad.stderr


# --------------------------------------------------------------------------- alerts


def promtool() -> str:
    for candidate in (bindir() / "promtool", Path(shutil.which("promtool") or "/nonexistent")):
        if candidate.exists():
            return str(candidate)
    prometheus = (bindir() / "prometheus").resolve()
    sibling = prometheus.parent / "promtool"
    assert sibling.exists(), "promtool not found (it comes with the prometheus package hack/tools.sh installs)"
    return str(sibling)


ALERTS = (
    "MinerGuardMinerDetected",
    "MinerGuardContainmentSuppressed",
    "MinerGuardContainmentFailed",
    "MinerGuardMetricsUnavailable",
    "MinerGuardPolicyInvalid",
    "MinerGuardAbsent",
)


def test_every_alert_links_to_its_runbook_section() -> None:
    rule = one(render(*sets("metrics.prometheusRule.enabled=true")), "PrometheusRule")
    rules = rule["spec"]["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == list(ALERTS)
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    sections = re.split(r"^## ", runbooks, flags=re.M)[1:]
    titled = {s.split("\n", 1)[0].strip(): s for s in sections}
    assert set(titled) == set(ALERTS), "one section of docs/runbooks.md per alert, titled with its name"
    base = "https://github.com/minerguard/minerguard/blob/main/docs/runbooks.md"
    for r in rules:
        # GitHub's anchor of a heading "## MinerGuardX" is #minerguardx.
        assert r["annotations"]["runbook_url"] == f"{base}#{r['alert'].lower()}", r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning")
        for part in ("**What it means.**", "**What to check.**", "**What to do.**"):
            assert part in titled[r["alert"]], (r["alert"], part)
    mine = render(*sets("metrics.prometheusRule.enabled=true", "metrics.prometheusRule.runbookBaseUrl=https://wiki/rb"))
    urls = [r["annotations"]["runbook_url"] for r in one(mine, "PrometheusRule")["spec"]["groups"][0]["rules"]]
    assert urls == [f"https://wiki/rb#{a.lower()}" for a in ALERTS]


def test_prometheus_rules_fire_when_they_should(tmp_path: Path) -> None:
    rule = one(render(*sets("metrics.prometheusRule.enabled=true")), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run([promtool(), "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    annotations = {r["alert"]: r["annotations"] for r in rule["spec"]["groups"][0]["rules"]}
    assert set(annotations) == set(ALERTS)

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
                    # A policy turns invalid at 6m; the valid ones never alert.
                    {"series": 'minerguard_policies{state="Invalid"}', "values": "0x5 1x35"},
                    {"series": 'minerguard_policies{state="Ready"}', "values": "4x40"},
                    # The only replica stops answering at 11m.
                    {"series": 'up{job="minerguard-metrics",namespace="minerguard-system"}', "values": "1x10 0x30"},
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
                    alert("MinerGuardPolicyInvalid", "4m"),
                    alert("MinerGuardPolicyInvalid", "8m"),  # pending: for 5m
                    alert("MinerGuardPolicyInvalid", "15m", {"severity": "warning"}),
                    alert("MinerGuardAbsent", "10m"),
                    alert("MinerGuardAbsent", "13m"),  # pending: for 5m
                    alert("MinerGuardAbsent", "20m", {"severity": "critical"}),
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    res = subprocess.run([promtool(), "test", "rules", "tests.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------- packaging and install.yaml


@pytest.mark.parametrize(("chart", "links"), [(CHART, "crds"), (POLICIES_CHART, "manifests/policies")])
def test_chart_packages_with_the_symlinked_files(tmp_path: Path, chart: Path, links: str) -> None:
    helm("package", str(chart), "--destination", str(tmp_path))
    archive = tmp_path / f"{chart.name}-0.1.0.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert all(not m.issym() for m in tar.getmembers()), "the package must hold the files, not links"
    sources = sorted(ROOT.glob(f"{links}/*.yaml"))
    assert sources
    for path in sources:
        assert f"{chart.name}/files/{Path(links).name}/{path.name}" in names
    from_dir = helm("template", "m", str(chart), "-n", "minerguard-system", *template_args()).stdout
    from_archive = helm("template", "m", str(archive), "-n", "minerguard-system", *template_args()).stdout
    assert from_archive == from_dir


def test_install_yaml_is_rendered_from_the_chart(tmp_path: Path) -> None:
    fresh, fresh_pack = tmp_path / "install.yaml", tmp_path / "policies-audit.yaml"
    res = subprocess.run(
        ["make", "-s", "manifests", f"INSTALL_YAML={fresh}", f"POLICIES_YAML={fresh_pack}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    committed = ROOT / "manifests" / "install.yaml"
    assert committed.read_text() == fresh.read_text(), "manifests/install.yaml is stale: run 'make manifests'"
    committed_pack = ROOT / "manifests" / "policies-audit.yaml"
    assert committed_pack.read_text() == fresh_pack.read_text(), "manifests/policies-audit.yaml is stale"
    docs = [d for d in yaml.safe_load_all(committed.read_text()) if d]
    # Without Helm nothing else creates the namespace: it comes first, for the restricted Pod Security level.
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == "minerguard-system"
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert sorted(c["metadata"]["name"] for c in of_kind(docs, "CustomResourceDefinition")) == sorted(CRD_NAMES)
    assert not of_kind(docs, "MinerPolicy"), "the policy pack is manifests/policies-audit.yaml"
    assert not any(is_hook(d) for d in docs), "kubectl apply knows no hooks"
    assert one(docs, "ClusterKopfPeering")["metadata"] == {
        "name": "minerguard",
        "labels": {"app.kubernetes.io/part-of": "minerguard"},
    }
    assert one(docs, "Deployment")["metadata"]["namespace"] == "minerguard-system"
    assert len(of_kind(docs, "ValidatingAdmissionPolicy")) == 10
    pack = [d for d in yaml.safe_load_all(committed_pack.read_text()) if d]
    assert {p["kind"] for p in pack} == {"MinerPolicy"} and {p["spec"]["mode"] for p in pack} == {"Audit"}
    assert len(pack) == len(source_docs("manifests/policies/*.yaml"))


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
        # The default pack (chart minerguard-policies) stays out: MinerPolicies are cluster-wide.
        helm(
            "install", release, str(CHART), "--namespace", namespace, "--create-namespace",
            "--take-ownership", "--wait", "--timeout", "3m",
            "--set", f"peering.name={release}",
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
        kubectl("get", "clusterkopfpeering", release)  # a hook: left in place, like the CRDs
    finally:
        if installed and release_keeps_its_crds(release, namespace):
            helm("uninstall", release, "-n", namespace, "--wait", kubeconfig=KUBECONFIG, check=False)
        elif installed:  # never let an uninstall delete the shared CRDs: forget the release, delete its objects
            kubectl("delete", "secret", "-n", namespace, "-l", f"owner=helm,name={release}", check=False)
            kubectl("delete", "clusterrole,clusterrolebinding", sa, "--ignore-not-found", check=False)
        kubectl("delete", "clusterkopfpeering", release, "--ignore-not-found", check=False)
        restore_crd_metadata(crds_before)
        kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)


# --------------------------------------------------------------------------- lifecycle on a bare API server


def test_first_install_upgrade_rollback_to_every_revision_and_uninstall_keep_detection_on(
    bare_apiserver: Path, tmp_path: Path
) -> None:
    ns, apps = "sec-tools", "apps"
    bare = Bare(bare_apiserver, ns)
    pack = {p["metadata"]["name"]: p["spec"]["mode"] for p in source_docs("manifests/policies/*.yaml")}
    audit = dict.fromkeys(pack, "Audit")
    assert not bare.names("crd")

    # First install, on a cluster without the CRDs: the CRDs, then the peering object (a hook).
    # No controller-manager runs here, so no pod ever comes: no --wait.
    bare.helm("install", "minerguard", str(CHART), "--create-namespace")
    assert bare.names("crd") == set(CRD_NAMES)
    assert bare.names("clusterkopfpeerings") == {"minerguard"}
    assert bare.names("validatingadmissionpolicies") == {
        "minerguard-protect-quarantine",
        "minerguard-protect-incidents",
        "minerguard-protect-admin-tier",
        *(f"minerguard-bound-operator-{p}" for p in BOUND_PARTS),
    }
    assert "ClusterKopfPeering" not in bare.manifest_kinds("minerguard")  # a hook, always
    # The pack, a release of its own now that the CRDs are served: ordinary objects, in Audit.
    bare.helm("install", "minerguard-policies", str(POLICIES_CHART))
    assert bare.modes() == audit
    assert bare.manifest_kinds("minerguard-policies").count("MinerPolicy") == len(pack)

    bare.workload_namespace(apps)
    bare.start_operator(tmp_path, "minerguard", "minerguard")

    def detection_on(step: str, mode: str) -> None:
        assert bare.names("clusterkopfpeerings") == {"minerguard"}, step
        assert bare.modes() == (audit if mode == "Audit" else pack), step
        bare.detects(step, apps, mode)

    try:
        detection_on("install", "Audit")
        # Switch to Enforce: the pack's one value.
        bare.helm("upgrade", "minerguard-policies", str(POLICIES_CHART), "--reuse-values", "--set", "mode=Enforce")
        detection_on("pack in Enforce", "Enforce")
        # Upgrade the operator (the peering hook is re-created).
        bare.helm("upgrade", "minerguard", str(CHART), "--reuse-values", "--set", "logLevel=DEBUG")
        detection_on("operator upgraded", "Enforce")
        # Rollback to every revision of each release, back and forth.
        for release, revision, mode in (
            ("minerguard", 1, "Enforce"),
            ("minerguard", 2, "Enforce"),
            ("minerguard-policies", 1, "Audit"),
            ("minerguard-policies", 2, "Enforce"),
            ("minerguard", 3, "Enforce"),
        ):
            bare.helm("rollback", release, str(revision))
            detection_on(f"rollback {release} to {revision}", mode)
        history = json.loads(bare.helm("history", "minerguard", "-o", "json"))
        assert [h["revision"] for h in history] == [1, 2, 3, 4, 5]

        # Uninstall: the pack goes; the operator's release goes, the CRDs, incidents and peering object stay.
        bare.helm("uninstall", "minerguard-policies")
        assert not bare.names("minerpolicies")
        out = bare.helm("uninstall", "minerguard")
        assert "These resources were kept due to the resource policy" in out
        assert bare.names("clusterkopfpeerings") == {"minerguard"}
    finally:
        bare.stop_operator()
    assert bare.names("crd") == set(CRD_NAMES)
    assert bare.names("clusterkopfpeerings") == {"minerguard"}
    # One incident per miner of the 8 steps, all kept.
    assert len(bare.get("minerincidents", "-n", apps)["items"]) == 8
    assert not bare.names("validatingadmissionpolicies")
    assert bare.k("get", "deployment", "minerguard", "-n", ns, check=False).returncode != 0
