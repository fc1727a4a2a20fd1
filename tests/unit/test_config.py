"""Unit tests for minerguard.config: settings from the environment.

What these tests prove: with an empty environment every setting has its documented
safe default; every ``MINERGUARD_*`` variable is read into the right field with the
right type; the Prometheus token is read (and stripped) from
``MINERGUARD_PROMETHEUS_TOKEN_FILE`` unless given directly; blank numbers fall back to
the default and bad numbers raise ``ValueError``; and every variable the Helm chart
sets is one the operator reads.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from minerguard.config import (
    CostSettings,
    FalcoSettings,
    GuardSettings,
    PrometheusSettings,
    RegistrySettings,
    Settings,
)
from minerguard.domain.admintier import AllowList

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.namespace == "minerguard-system"
    assert s.instance == "minerguard-local"
    assert s.peering == ""
    assert s.priority == 0
    assert s.peering_lifetime == 10
    assert s.dry_run is False
    assert s.resync_interval == 30.0
    assert s.status_interval == 5.0
    assert s.log_format == "text"
    assert s.log_level == "INFO"
    assert s.metrics_port == 0


def test_prometheus_defaults() -> None:
    p = Settings.from_env({}).prometheus
    assert p == PrometheusSettings()
    assert (p.url, p.token, p.ca_file) == ("", "", "")
    assert p.timeout == 10.0
    assert p.container_cpu_metric == "container_cpu_usage_seconds_total"
    assert p.node_cpu_metric == "node_cpu_usage_seconds_total"
    assert (p.namespace_label, p.pod_label, p.container_label, p.node_label) == (
        "namespace",
        "pod",
        "container",
        "node",
    )
    assert p.rate_window == "1m"
    assert p.interval == 30.0
    # Only the kubelet's scrape counts by default: a tenant's endpoint cannot forge CPU series.
    assert (p.series_job, p.container_metrics_path, p.node_metrics_path) == (
        "kubelet",
        "/metrics/cadvisor",
        "/metrics/resource",
    )


def test_guard_defaults() -> None:
    g = Settings.from_env({}).guards
    assert g == GuardSettings()
    assert g.max_nodes == 3
    assert g.max_percent == 10.0
    assert g.min_schedulable_nodes == 2
    assert g.excluded_node_selector == "node-role.kubernetes.io/control-plane"
    assert g.max_actions_per_hour == 10
    assert g.max_scale_replicas == 10


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.dry_run = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.guards.max_nodes = 100  # type: ignore[misc]


FULL_ENV = {
    "MINERGUARD_NAMESPACE": "ops",
    "MINERGUARD_INSTANCE": "minerguard-7d9f-abcde",
    "MINERGUARD_PEERING": "minerguard",
    "MINERGUARD_PRIORITY": "42",
    "MINERGUARD_PEERING_LIFETIME": "15",
    "MINERGUARD_DRY_RUN": "true",
    "MINERGUARD_RESYNC_INTERVAL": "12.5",
    "MINERGUARD_STATUS_INTERVAL": "2",
    "MINERGUARD_LOG_FORMAT": "json",
    "MINERGUARD_LOG_LEVEL": "DEBUG",
    "MINERGUARD_METRICS_PORT": "9102",
    "MINERGUARD_PROMETHEUS_URL": "http://prometheus.monitoring.svc:9090",
    "MINERGUARD_PROMETHEUS_TOKEN": "s3cret",
    "MINERGUARD_PROMETHEUS_CA_FILE": "/etc/ca.pem",
    "MINERGUARD_PROMETHEUS_TIMEOUT": "2.5",
    "MINERGUARD_METRIC_CONTAINER_CPU": "ctr_cpu",
    "MINERGUARD_METRIC_NODE_CPU": "node_cpu",
    "MINERGUARD_LABEL_NAMESPACE": "ns",
    "MINERGUARD_LABEL_POD": "pod_name",
    "MINERGUARD_LABEL_CONTAINER": "container_name",
    "MINERGUARD_LABEL_NODE": "instance",
    "MINERGUARD_METRIC_JOB": "kubernetes-nodes-cadvisor",
    "MINERGUARD_METRIC_CONTAINER_PATH": "/metrics/resource",
    "MINERGUARD_METRIC_NODE_PATH": "",
    "MINERGUARD_RATE_WINDOW": "2m",
    "MINERGUARD_METRICS_INTERVAL": "15",
    "MINERGUARD_PROMETHEUS_SCRAPE_INTERVAL": "30s",
    "MINERGUARD_GUARD_MAX_NODES": "5",
    "MINERGUARD_GUARD_MAX_PERCENT": "25.5",
    "MINERGUARD_GUARD_MIN_SCHEDULABLE": "4",
    "MINERGUARD_GUARD_EXCLUDED_NODES": "pool=infra,gpu",
    "MINERGUARD_GUARD_MAX_ACTIONS_PER_HOUR": "7",
    "MINERGUARD_GUARD_MAX_SCALE_REPLICAS": "4",
    "MINERGUARD_GUARD_MAX_EVICTIONS_PER_HOUR": "3",
    "MINERGUARD_GUARD_EVICT_EXCLUDED_NAMESPACES": "kube-system,infra",
    "MINERGUARD_HOST_NETWORK_FALLBACK": "none",
    # MINERGUARD_FALCO_ENABLED is tested on its own (it needs the TLS files and the token's Secret).
    "MINERGUARD_FALCO_ADDRESS": "127.0.0.1",
    "MINERGUARD_FALCO_PORT": "9443",
    "MINERGUARD_FALCO_TLS_CERT": "/tls/tls.crt",
    "MINERGUARD_FALCO_TLS_KEY": "/tls/tls.key",
    "MINERGUARD_FALCO_TOKEN_SECRET": "falco-token",
    "MINERGUARD_FALCO_TOKEN_KEY": "bearer",
    "MINERGUARD_FALCO_MAX_BODY": "4096",
    "MINERGUARD_FALCO_RATE": "2.5",
    "MINERGUARD_FALCO_BURST": "7",
    "MINERGUARD_FALCO_MAX_AGE": "120",
    "MINERGUARD_FALCO_RETENTION": "600",
    "MINERGUARD_ENFORCEMENT": "cilium",
    "MINERGUARD_ENFORCEMENT_PRIORITY": "7",
    "MINERGUARD_ENFORCEMENT_ALLOW_DNS": "true",
    "MINERGUARD_ENFORCEMENT_ALLOW_NAMESPACE": "forensics",
    "MINERGUARD_SCALE_OWNER": "true",
    "MINERGUARD_COST_PRICE_PER_CORE_HOUR": "0.08",
    "MINERGUARD_COST_CURRENCY": "EUR",
    "MINERGUARD_COST_WRITE_INTERVAL": "30",
    "MINERGUARD_IMAGES_ENABLED": "true",
    "MINERGUARD_IMAGES_REGISTRIES": "ghcr.io, quay.io",
    "MINERGUARD_IMAGES_INSECURE": "127.0.0.1:5000",
    "MINERGUARD_IMAGES_CREDENTIALS_FILE": "/var/run/secrets/minerguard/registry/.dockerconfigjson",
    "MINERGUARD_IMAGES_TIMEOUT": "3.5",
    "MINERGUARD_IMAGES_CONCURRENCY": "2",
    "MINERGUARD_IMAGES_RATE": "1.5",
    "MINERGUARD_IMAGES_MAX_CONFIG_BYTES": "65536",
    "MINERGUARD_IMAGES_CACHE_SIZE": "100",
    "MINERGUARD_IMAGES_CACHE_BYTES": "1000000",
    "MINERGUARD_IMAGES_NEGATIVE_TTL": "30",
    "MINERGUARD_POLICY_REPORTS": "true",
    "MINERGUARD_POLICY_REPORTS_INTERVAL": "4",
}


def test_every_variable_is_read() -> None:
    s = Settings.from_env(FULL_ENV)
    assert s == Settings(
        namespace="ops",
        instance="minerguard-7d9f-abcde",
        peering="minerguard",
        priority=42,
        peering_lifetime=15,
        dry_run=True,
        resync_interval=12.5,
        status_interval=2.0,
        log_format="json",
        log_level="DEBUG",
        metrics_port=9102,
        prometheus=PrometheusSettings(
            url="http://prometheus.monitoring.svc:9090",
            token="s3cret",
            ca_file="/etc/ca.pem",
            timeout=2.5,
            container_cpu_metric="ctr_cpu",
            node_cpu_metric="node_cpu",
            namespace_label="ns",
            pod_label="pod_name",
            container_label="container_name",
            node_label="instance",
            series_job="kubernetes-nodes-cadvisor",
            container_metrics_path="/metrics/resource",
            node_metrics_path="",
            rate_window="2m",
            interval=15.0,
            scrape_interval="30s",
        ),
        guards=GuardSettings(
            max_nodes=5,
            max_percent=25.5,
            min_schedulable_nodes=4,
            excluded_node_selector="pool=infra,gpu",
            max_actions_per_hour=7,
            max_scale_replicas=4,
            max_evictions_per_hour=3,
            evict_excluded_namespaces="kube-system,infra",
        ),
        host_network_fallback="none",
        falco=FalcoSettings(
            enabled=False,
            address="127.0.0.1",
            port=9443,
            tls_cert="/tls/tls.crt",
            tls_key="/tls/tls.key",
            token_secret="falco-token",
            token_key="bearer",
            max_body=4096,
            rate=2.5,
            burst=7,
            max_age=120.0,
            retention=600.0,
        ),
        enforcement="cilium",
        enforcement_priority=7,
        enforcement_allow=AllowList(dns=True, forensics_namespace="forensics"),
        enabled_actions=frozenset({"scaleOwner"}),
        cost=CostSettings(price_per_core_hour=0.08, currency="EUR", write_interval=30.0),
        registry=RegistrySettings(
            enabled=True,
            registries=("ghcr.io", "quay.io"),
            insecure=("127.0.0.1:5000",),
            credentials_file="/var/run/secrets/minerguard/registry/.dockerconfigjson",
            timeout=3.5,
            concurrency=2,
            rate=1.5,
            max_config_bytes=65536,
            cache_size=100,
            cache_bytes=1000000,
            negative_ttl=30.0,
        ),
        policy_reports=True,
        policy_reports_interval=4.0,
    )


def test_the_allow_list_takes_a_namespace_name_and_never_kube_system() -> None:
    assert not Settings.from_env({}).enforcement_allow
    assert Settings.from_env({}).enabled_actions == frozenset()
    with pytest.raises(ValueError, match="not a namespace name"):
        Settings.from_env({"MINERGUARD_ENFORCEMENT_ALLOW_NAMESPACE": "Bad_Name"})
    with pytest.raises(ValueError, match="not kube-system"):
        Settings.from_env({"MINERGUARD_ENFORCEMENT_ALLOW_NAMESPACE": "kube-system"})


def test_a_host_network_fallback_other_than_evict_or_none_is_refused() -> None:
    with pytest.raises(ValueError, match="MINERGUARD_HOST_NETWORK_FALLBACK"):
        Settings.from_env({"MINERGUARD_HOST_NETWORK_FALLBACK": "cordon"})


def test_an_unknown_enforcement_backend_is_an_error() -> None:
    with pytest.raises(ValueError, match="MINERGUARD_ENFORCEMENT='iptables' is not one of auto, adminNetworkPolicy"):
        Settings.from_env({"MINERGUARD_ENFORCEMENT": "iptables"})
    assert Settings.from_env({"MINERGUARD_ENFORCEMENT": " "}).enforcement == "auto"


def test_the_default_price_is_the_articles_node_month() -> None:
    """130 USD a month for a fully used node, as 130 / 730 h / 4 cores (domain.cost states the derivation)."""
    from minerguard.domain.cost import DEFAULT_PRICE_PER_CORE_HOUR

    assert Settings.from_env({}).cost == CostSettings(DEFAULT_PRICE_PER_CORE_HOUR, "USD", 60.0)


def test_numbers_have_their_types() -> None:
    s = Settings.from_env(FULL_ENV)
    for value in (s.priority, s.peering_lifetime, s.metrics_port, s.guards.max_nodes, s.guards.max_actions_per_hour):
        assert type(value) is int
    for value in (s.resync_interval, s.status_interval, s.prometheus.timeout, s.prometheus.interval):
        assert type(value) is float
    assert type(s.guards.max_percent) is float


@pytest.mark.parametrize("key", sorted(FULL_ENV))
def test_each_variable_alone_changes_only_its_setting(key: str) -> None:
    default = dataclasses.asdict(Settings.from_env({}))
    alone = dataclasses.asdict(Settings.from_env({key: FULL_ENV[key]}))
    full = dataclasses.asdict(Settings.from_env(FULL_ENV))

    def flat(d: dict[str, object], prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    d, a, f = flat(default), flat(alone), flat(full)
    changed = {k for k in d if a[k] != d[k]}
    assert len(changed) == 1, f"{key} changed {changed}"
    (field,) = changed
    assert a[field] == f[field]


def test_instance_falls_back_to_hostname() -> None:
    assert Settings.from_env({"HOSTNAME": "pod-xyz"}).instance == "pod-xyz"
    assert Settings.from_env({"HOSTNAME": "pod-xyz", "MINERGUARD_INSTANCE": "explicit"}).instance == "explicit"


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "True", "yes", "on", " on "])
def test_dry_run_true_spellings(raw: str) -> None:
    assert Settings.from_env({"MINERGUARD_DRY_RUN": raw}).dry_run is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off"])
def test_dry_run_false_spellings(raw: str) -> None:
    assert Settings.from_env({"MINERGUARD_DRY_RUN": raw}).dry_run is False


@pytest.mark.parametrize("raw", ["", "  "])
def test_blank_values_keep_the_defaults(raw: str) -> None:
    env = {
        "MINERGUARD_DRY_RUN": raw,
        "MINERGUARD_PRIORITY": raw,
        "MINERGUARD_GUARD_MAX_PERCENT": raw,
        "MINERGUARD_PROMETHEUS_TIMEOUT": raw,
        "MINERGUARD_METRICS_PORT": raw,
    }
    s = Settings.from_env(env)
    assert (s.dry_run, s.priority, s.guards.max_percent, s.prometheus.timeout, s.metrics_port) == (
        False,
        0,
        10.0,
        10.0,
        0,
    )


def test_numbers_tolerate_surrounding_whitespace() -> None:
    s = Settings.from_env({"MINERGUARD_PRIORITY": " 3 ", "MINERGUARD_PROMETHEUS_TIMEOUT": "\t1.5\n"})
    assert (s.priority, s.prometheus.timeout) == (3, 1.5)


def test_negative_priority() -> None:
    assert Settings.from_env({"MINERGUARD_PRIORITY": "-5"}).priority == -5


# --------------------------------------------------------------------------- token


def test_token_read_from_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  eyJhbGciOi.token.value\n", encoding="utf-8")
    s = Settings.from_env({"MINERGUARD_PROMETHEUS_TOKEN_FILE": str(token_file)})
    assert s.prometheus.token == "eyJhbGciOi.token.value"


def test_direct_token_wins_over_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file", encoding="utf-8")
    env = {"MINERGUARD_PROMETHEUS_TOKEN": "direct", "MINERGUARD_PROMETHEUS_TOKEN_FILE": str(token_file)}
    assert Settings.from_env(env).prometheus.token == "direct"


def test_a_missing_token_file_is_an_error_naming_it(tmp_path: Path) -> None:
    env = {"MINERGUARD_PROMETHEUS_TOKEN_FILE": str(tmp_path / "absent")}
    with pytest.raises(ValueError, match="MINERGUARD_PROMETHEUS_TOKEN_FILE"):
        Settings.from_env(env)


@pytest.mark.parametrize("typo", ["ture", "yes please", "2"])
def test_a_boolean_typo_is_an_error_not_false(typo: str) -> None:
    with pytest.raises(ValueError, match="MINERGUARD_DRY_RUN"):
        Settings.from_env({"MINERGUARD_DRY_RUN": typo})


def test_token_file_is_read_at_each_call(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("one", encoding="utf-8")
    env = {"MINERGUARD_PROMETHEUS_TOKEN_FILE": str(token_file)}
    assert Settings.from_env(env).prometheus.token == "one"
    token_file.write_text("two", encoding="utf-8")
    assert Settings.from_env(env).prometheus.token == "two"


# --------------------------------------------------------------------------- bad numbers

NUMERIC = [
    "MINERGUARD_PRIORITY",
    "MINERGUARD_PEERING_LIFETIME",
    "MINERGUARD_RESYNC_INTERVAL",
    "MINERGUARD_STATUS_INTERVAL",
    "MINERGUARD_METRICS_PORT",
    "MINERGUARD_PROMETHEUS_TIMEOUT",
    "MINERGUARD_METRICS_INTERVAL",
    "MINERGUARD_GUARD_MAX_NODES",
    "MINERGUARD_GUARD_MAX_PERCENT",
    "MINERGUARD_GUARD_MIN_SCHEDULABLE",
    "MINERGUARD_GUARD_MAX_ACTIONS_PER_HOUR",
]
INTEGER = {
    "MINERGUARD_PRIORITY",
    "MINERGUARD_PEERING_LIFETIME",
    "MINERGUARD_METRICS_PORT",
    "MINERGUARD_GUARD_MAX_NODES",
    "MINERGUARD_GUARD_MIN_SCHEDULABLE",
    "MINERGUARD_GUARD_MAX_ACTIONS_PER_HOUR",
}


@pytest.mark.parametrize("key", NUMERIC)
@pytest.mark.parametrize("raw", ["abc", "ten", "1,5", "0x10", "--1"])
def test_bad_numbers_raise_value_error_quoting_the_value(key: str, raw: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(raw))):
        Settings.from_env({key: raw})


@pytest.mark.parametrize("key", sorted(INTEGER))
def test_integers_refuse_fractions(key: str) -> None:
    with pytest.raises(ValueError, match=re.escape("'2.5'")):
        Settings.from_env({key: "2.5"})


@pytest.mark.parametrize("key", ["MINERGUARD_GUARD_MAX_NODES", "MINERGUARD_PROMETHEUS_TIMEOUT"])
def test_bad_number_error_names_the_variable(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Settings.from_env({key: "abc"})


# --------------------------------------------------------------------------- chart consistency


def test_every_variable_the_chart_sets_is_read() -> None:
    deployment = (ROOT / "helm" / "minerguard" / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    source = (ROOT / "operator" / "minerguard" / "config.py").read_text(encoding="utf-8")
    chart_vars = set(re.findall(r"-\s+name:\s+(MINERGUARD_[A-Z_]+)", deployment))
    assert chart_vars, "the chart sets no MINERGUARD_* variable?"
    unread = sorted(v for v in chart_vars if f'"{v}"' not in source)
    assert not unread, f"the chart sets variables the operator never reads: {unread}"
    # ...and each one is covered by the tests above.
    assert chart_vars <= {*FULL_ENV, "MINERGUARD_PROMETHEUS_TOKEN_FILE", "MINERGUARD_FALCO_ENABLED"}
