"""Operator settings, read once at start from the environment (the Helm chart sets them).

Every setting has a safe default; nothing here changes behaviour for tests only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from minerguard.domain.admintier import AUTO, CHOICES, AllowList


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "")
    if not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a number") from None


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "")
    if not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} is not a whole number") from None


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (the first is the default); anything else is an error."""
    raw = env.get(key, "").strip()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ValueError(f"{key}={raw!r} is not one of {', '.join(choices)}")
    return raw


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """true/false, yes/no, on/off, 1/0; anything else is an error (a typo must never mean "act for real")."""
    raw = env.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{key}={raw!r} is not a boolean (true or false)")


def _list(env: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(key)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _duration(env: Mapping[str, str], key: str, default: str) -> str:
    """A PromQL duration of whole seconds, minutes or hours (``30s``, ``1m``); blank is the default."""
    raw = env.get(key, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]+(s|m|h)", raw) or int(raw[:-1]) == 0:
        raise ValueError(f"{key}={raw!r} is not a duration such as 30s, 1m or 1h")
    return raw


def _prometheus_token(env: Mapping[str, str]) -> str:
    """MINERGUARD_PROMETHEUS_TOKEN, or the content of MINERGUARD_PROMETHEUS_TOKEN_FILE (a mounted Secret)."""
    token = env.get("MINERGUARD_PROMETHEUS_TOKEN", "")
    token_file = env.get("MINERGUARD_PROMETHEUS_TOKEN_FILE", "")
    if not token and token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise ValueError(f"MINERGUARD_PROMETHEUS_TOKEN_FILE={token_file!r} cannot be read: {exc}") from None
    return token


@dataclass(frozen=True)
class PrometheusSettings:
    """How to reach Prometheus, and the metric and label names to query."""

    url: str = ""
    token: str = ""
    ca_file: str = ""
    timeout: float = 10.0
    container_cpu_metric: str = "container_cpu_usage_seconds_total"
    node_cpu_metric: str = "node_cpu_usage_seconds_total"
    namespace_label: str = "namespace"
    pod_label: str = "pod"
    container_label: str = "container"
    node_label: str = "node"
    # The series selector: only series from the kubelet's own scrape count. A tenant whose endpoint
    # Prometheus also scrapes could otherwise expose container_cpu_usage_seconds_total for any pod and
    # fake or mask its CPU. Empty values drop the matcher.
    series_job: str = "kubelet"
    container_metrics_path: str = "/metrics/cadvisor"
    node_metrics_path: str = "/metrics/resource"
    rate_window: str = "1m"
    """The longest rate() window; per signal window it is at most half the window and at least 4 scrapes."""
    interval: float = 30.0
    """The longest time between metric cycles; the cycle is a quarter of the shortest signal window below that."""
    scrape_interval: str = ""
    """The kubelets' scrape interval (a duration); empty: read it from Prometheus' targets (else 30s)."""


@dataclass(frozen=True)
class GuardSettings:
    """Blast-radius guards for node actions."""

    max_nodes: int = 3
    max_percent: float = 10.0
    min_schedulable_nodes: int = 2
    excluded_node_selector: str = "node-role.kubernetes.io/control-plane"
    max_actions_per_hour: int = 10
    max_scale_replicas: int = 10
    """scaleOwner holds back (Suppressed) owners running more replicas than this."""
    max_evictions_per_hour: int = 10
    """evict holds back (Suppressed) once this many pods were evicted in the last hour."""
    evict_excluded_namespaces: str = "kube-system"
    """Namespaces (comma-separated) evict never acts in; the operator's own is always excluded."""


@dataclass(frozen=True)
class FalcoSettings:
    """The Falco endpoint (off by default): where it listens, its TLS files, the Secret holding its token,
    its bounds, and how old an event may be (``max_age``) and how long it counts as evidence (``retention``)."""

    enabled: bool = False
    address: str = "0.0.0.0"  # noqa: S104 - in a pod, Falco posts from other pods
    port: int = 8443
    tls_cert: str = ""
    tls_key: str = ""
    token_secret: str = ""
    token_key: str = "token"  # noqa: S105 - the name of the key in the Secret, not a token
    max_body: int = 64 * 1024
    rate: float = 20.0
    burst: int = 100
    max_age: float = 300.0
    retention: float = 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FalcoSettings:
        falco = cls(
            enabled=_bool(env, "MINERGUARD_FALCO_ENABLED", False),
            address=env.get("MINERGUARD_FALCO_ADDRESS", "0.0.0.0"),  # noqa: S104
            port=_int(env, "MINERGUARD_FALCO_PORT", 8443),
            tls_cert=env.get("MINERGUARD_FALCO_TLS_CERT", ""),
            tls_key=env.get("MINERGUARD_FALCO_TLS_KEY", ""),
            token_secret=env.get("MINERGUARD_FALCO_TOKEN_SECRET", ""),
            token_key=env.get("MINERGUARD_FALCO_TOKEN_KEY", "token"),
            max_body=_int(env, "MINERGUARD_FALCO_MAX_BODY", 64 * 1024),
            rate=_float(env, "MINERGUARD_FALCO_RATE", 20.0),
            burst=_int(env, "MINERGUARD_FALCO_BURST", 100),
            max_age=_float(env, "MINERGUARD_FALCO_MAX_AGE", 300.0),
            retention=_float(env, "MINERGUARD_FALCO_RETENTION", 3600.0),
        )
        if falco.enabled and not (falco.tls_cert and falco.tls_key and falco.token_secret):
            raise ValueError(
                "MINERGUARD_FALCO_ENABLED needs MINERGUARD_FALCO_TLS_CERT, MINERGUARD_FALCO_TLS_KEY and "
                "MINERGUARD_FALCO_TOKEN_SECRET: the endpoint serves TLS only, to holders of the token only"
            )
        return falco


@dataclass(frozen=True)
class CostSettings:
    """The bill of an incident (status.cost): the price of a CPU core-hour and how often the bill is written."""

    price_per_core_hour: float = 0.0445
    """The article's ~130 USD a month for a fully used node, as 130 / 730 h / 4 cores (domain.cost)."""
    currency: str = "USD"
    write_interval: float = 60.0
    """At most one status.cost write per incident per this many seconds."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CostSettings:
        return cls(
            price_per_core_hour=_float(env, "MINERGUARD_COST_PRICE_PER_CORE_HOUR", 0.0445),
            currency=env.get("MINERGUARD_COST_CURRENCY", "USD") or "USD",
            write_interval=_float(env, "MINERGUARD_COST_WRITE_INTERVAL", 60.0),
        )


@dataclass(frozen=True)
class RegistrySettings:
    """Reading image configs from registries (``signals.imageConfig``): off unless ``enabled``.

    ``registries``: the only registry hosts (host[:port]) read; empty means any registry on a public
    address. ``insecure``: hosts read over plain http (listed ones only, e.g. a loopback test registry).
    ``credentials_file``: the one docker-config Secret the chart names, mounted as a file (no Secret RBAC), if any.
    """

    enabled: bool = False
    registries: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    credentials_file: str = ""
    timeout: float = 10.0
    concurrency: int = 4
    rate: float = 5.0
    """Requests a second per registry host (bursts of twice that)."""
    max_config_bytes: int = 1 << 20
    cache_size: int = 4096
    """Image configs kept (by manifest digest; a tag's resolution is kept ``tag_ttl`` seconds)..."""
    cache_bytes: int = 64 << 20
    """... and at most this many characters of their text in all (a config may hold up to 1 MiB)."""
    tag_ttl: float = 600.0
    negative_ttl: float = 120.0
    """Seconds a failed read is remembered before that image is asked again."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RegistrySettings:
        return cls(
            enabled=_bool(env, "MINERGUARD_IMAGES_ENABLED", False),
            registries=_list(env, "MINERGUARD_IMAGES_REGISTRIES", ()),
            insecure=_list(env, "MINERGUARD_IMAGES_INSECURE", ()),
            credentials_file=env.get("MINERGUARD_IMAGES_CREDENTIALS_FILE", ""),
            timeout=_float(env, "MINERGUARD_IMAGES_TIMEOUT", 10.0),
            concurrency=max(1, _int(env, "MINERGUARD_IMAGES_CONCURRENCY", 4)),
            rate=_float(env, "MINERGUARD_IMAGES_RATE", 5.0),
            max_config_bytes=_int(env, "MINERGUARD_IMAGES_MAX_CONFIG_BYTES", 1 << 20),
            cache_size=_int(env, "MINERGUARD_IMAGES_CACHE_SIZE", 4096),
            cache_bytes=_int(env, "MINERGUARD_IMAGES_CACHE_BYTES", 64 << 20),
            negative_ttl=_float(env, "MINERGUARD_IMAGES_NEGATIVE_TTL", 120.0),
        )


def _allow_list(env: Mapping[str, str]) -> AllowList:
    return AllowList(
        dns=_bool(env, "MINERGUARD_ENFORCEMENT_ALLOW_DNS", False),
        forensics_namespace=env.get("MINERGUARD_ENFORCEMENT_ALLOW_NAMESPACE", "").strip(),
    )


@dataclass(frozen=True)
class Settings:
    """Everything the operator reads from its environment."""

    namespace: str = "minerguard-system"
    instance: str = "minerguard-local"
    peering: str = ""
    priority: int = 0
    peering_lifetime: int = 10
    dry_run: bool = False
    host_network_fallback: str = "evict"
    """What an Enforce policy listing quarantine does to a hostNetwork pod, which NetworkPolicy cannot cut off:
    ``evict`` (delete it, guarded) or ``none`` (record it NotContainable)."""
    resync_interval: float = 30.0
    status_interval: float = 5.0
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    guards: GuardSettings = field(default_factory=GuardSettings)
    falco: FalcoSettings = field(default_factory=FalcoSettings)
    cost: CostSettings = field(default_factory=CostSettings)
    policy_reports: bool = False
    """Write a wgpolicyk8s.io PolicyReport per namespace with open incidents."""
    policy_reports_interval: float = 10.0
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int = 0
    metrics_address: str = "0.0.0.0"  # noqa: S104 - in a pod, Prometheus scrapes from other pods
    enforcement: str = AUTO
    """The quarantine backend: auto, adminNetworkPolicy, cilium, calico or networkPolicy."""
    enforcement_priority: int = 0
    """The priority (order, for Calico) of the cluster-wide Deny policy: 0 is the highest."""
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    enabled_actions: frozenset[str] = frozenset()
    """Optional actions turned on (``scaleOwner`` with MINERGUARD_SCALE_OWNER, the chart's scaleOwner.enabled)."""
    enforcement_allow: AllowList = field(default_factory=lambda: AllowList())
    """What minerguard's cluster-wide Deny still lets quarantined pods reach (off by default)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        prom = PrometheusSettings(
            url=env.get("MINERGUARD_PROMETHEUS_URL", ""),
            token=_prometheus_token(env),
            ca_file=env.get("MINERGUARD_PROMETHEUS_CA_FILE", ""),
            timeout=_float(env, "MINERGUARD_PROMETHEUS_TIMEOUT", 10.0),
            container_cpu_metric=env.get("MINERGUARD_METRIC_CONTAINER_CPU", "container_cpu_usage_seconds_total"),
            node_cpu_metric=env.get("MINERGUARD_METRIC_NODE_CPU", "node_cpu_usage_seconds_total"),
            namespace_label=env.get("MINERGUARD_LABEL_NAMESPACE", "namespace"),
            pod_label=env.get("MINERGUARD_LABEL_POD", "pod"),
            container_label=env.get("MINERGUARD_LABEL_CONTAINER", "container"),
            node_label=env.get("MINERGUARD_LABEL_NODE", "node"),
            series_job=env.get("MINERGUARD_METRIC_JOB", "kubelet"),
            container_metrics_path=env.get("MINERGUARD_METRIC_CONTAINER_PATH", "/metrics/cadvisor"),
            node_metrics_path=env.get("MINERGUARD_METRIC_NODE_PATH", "/metrics/resource"),
            rate_window=_duration(env, "MINERGUARD_RATE_WINDOW", "1m"),
            interval=_float(env, "MINERGUARD_METRICS_INTERVAL", 30.0),
            scrape_interval=_duration(env, "MINERGUARD_PROMETHEUS_SCRAPE_INTERVAL", ""),
        )
        guards = GuardSettings(
            max_nodes=_int(env, "MINERGUARD_GUARD_MAX_NODES", 3),
            max_percent=_float(env, "MINERGUARD_GUARD_MAX_PERCENT", 10.0),
            min_schedulable_nodes=_int(env, "MINERGUARD_GUARD_MIN_SCHEDULABLE", 2),
            excluded_node_selector=env.get("MINERGUARD_GUARD_EXCLUDED_NODES", "node-role.kubernetes.io/control-plane"),
            max_actions_per_hour=_int(env, "MINERGUARD_GUARD_MAX_ACTIONS_PER_HOUR", 10),
            max_scale_replicas=_int(env, "MINERGUARD_GUARD_MAX_SCALE_REPLICAS", 10),
            max_evictions_per_hour=_int(env, "MINERGUARD_GUARD_MAX_EVICTIONS_PER_HOUR", 10),
            evict_excluded_namespaces=env.get("MINERGUARD_GUARD_EVICT_EXCLUDED_NAMESPACES", "kube-system"),
        )
        enforcement = env.get("MINERGUARD_ENFORCEMENT", "").strip() or AUTO
        if enforcement not in CHOICES:
            raise ValueError(f"MINERGUARD_ENFORCEMENT={enforcement!r} is not one of {', '.join(CHOICES)}")
        return cls(
            namespace=env.get("MINERGUARD_NAMESPACE", "minerguard-system"),
            instance=env.get("MINERGUARD_INSTANCE", env.get("HOSTNAME", "minerguard-local")),
            peering=env.get("MINERGUARD_PEERING", ""),
            priority=_int(env, "MINERGUARD_PRIORITY", 0),
            peering_lifetime=_int(env, "MINERGUARD_PEERING_LIFETIME", 10),
            dry_run=_bool(env, "MINERGUARD_DRY_RUN", False),
            host_network_fallback=_choice(env, "MINERGUARD_HOST_NETWORK_FALLBACK", ("evict", "none")),
            resync_interval=_float(env, "MINERGUARD_RESYNC_INTERVAL", 30.0),
            status_interval=_float(env, "MINERGUARD_STATUS_INTERVAL", 5.0),
            prometheus=prom,
            guards=guards,
            falco=FalcoSettings.from_env(env),
            cost=CostSettings.from_env(env),
            policy_reports=_bool(env, "MINERGUARD_POLICY_REPORTS", False),
            policy_reports_interval=_float(env, "MINERGUARD_POLICY_REPORTS_INTERVAL", 10.0),
            log_format=env.get("MINERGUARD_LOG_FORMAT", "text"),
            log_level=env.get("MINERGUARD_LOG_LEVEL", "INFO"),
            metrics_port=_int(env, "MINERGUARD_METRICS_PORT", 0),
            metrics_address=env.get("MINERGUARD_METRICS_ADDRESS", "0.0.0.0"),  # noqa: S104
            enforcement=enforcement,
            enforcement_priority=_int(env, "MINERGUARD_ENFORCEMENT_PRIORITY", 0),
            registry=RegistrySettings.from_env(env),
            enabled_actions=frozenset({"scaleOwner"} if _bool(env, "MINERGUARD_SCALE_OWNER", False) else ()),
            enforcement_allow=_allow_list(env),
        )
