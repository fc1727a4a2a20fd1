"""MinerPolicy objects parsed into immutable :class:`Policy` values.

:func:`parse_policy` turns a MinerPolicy object (a plain dict, as read from the API or
from a YAML file) into a :class:`Policy`, checking everything the CRD schema checks, so
that the operator and the offline ``minerguard scan`` give the same verdict on a policy,
and compiling every pattern. A bad policy raises :class:`PolicyInvalid`, whose ``reason``
(``InvalidSpec``, ``InvalidRegex``, ``InvalidSelector``, ``UnknownAction``) and
``message`` (naming the field, for example ``spec.signals.processes[2].regex``) go into
the policy's status condition.

This module has no kopf and no Kubernetes client imports: it is pure data.
"""

# size: the MinerPolicy contract in one place (every field's parsing next to its type).

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minerguard import API_GROUP, API_VERSION
from minerguard.domain import selectors
from minerguard.domain.fields import (
    PolicyInvalid,
    enum,
    integer,
    invalid,
    known_fields,
    list_of,
    mapping,
    number,
    opt_mapping,
    opt_string,
    string,
    type_name,
)
from minerguard.domain.fields import (
    strength as read_strength,
)
from minerguard.domain.fields import (
    window as read_window,
)
from minerguard.domain.kinds import (
    ACTION_NAMES,
    DEFAULT_STRENGTH,
    METRIC_SIGNAL_KINDS,
    MODES,
    SIGNAL_KINDS,
    WEAK,
)
from minerguard.domain.patterns import MAX_PATTERN_LEN, Pattern, PatternError, PatternSet, compile_pattern
from minerguard.domain.runtime import RuntimeSignals, parse_runtime
from minerguard.domain.selectors import show

__all__ = [
    "ACTION_NAMES",
    "ActionSpec",
    "CpuSignals",
    "DigestIndicator",
    "Indicator",
    "MatchSpec",
    "NodeCpuSpec",
    "PodCpuSpec",
    "Policy",
    "PolicyInvalid",
    "PortIndicator",
    "Scope",
    "Signals",
    "UnaccountedCpuSpec",
    "parse_policy",
]

WHEN_VALUES = ("Always", "HostAccess")
RELATIVE_TO = ("Limit", "Request", "Cores")
POLICY_KIND = "MinerPolicy"
POLICY_API_VERSION = f"{API_GROUP}/{API_VERSION}"


# ---------------------------------------------------------------------------------------
# Policy


@dataclass(frozen=True)
class Indicator:
    """A compiled glob/regex indicator with its strength, note and field path."""

    pattern: Pattern
    strength: str
    note: str = ""
    path: str = ""


@dataclass(frozen=True)
class DigestIndicator:
    """A known miner image digest (``sha256:`` + 64 hex digits). Always Strong."""

    digest: str
    note: str = ""


@dataclass(frozen=True)
class PortIndicator:
    """A stratum port; counted only in host:port values and non-web URLs."""

    port: int
    strength: str = WEAK
    note: str = ""


@dataclass(frozen=True)
class Signals:
    """The spec (non-metric) indicators of a policy."""

    images: tuple[Indicator, ...] = ()
    image_digests: tuple[DigestIndicator, ...] = ()
    pool_schemes: tuple[str, ...] = ()
    pool_hosts: tuple[Indicator, ...] = ()
    pool_ports: tuple[PortIndicator, ...] = ()
    processes: tuple[Indicator, ...] = ()
    arguments: tuple[Indicator, ...] = ()
    monero: bool = False
    wallet_patterns: tuple[Indicator, ...] = ()
    config_maps: bool = False
    """Read the ConfigMaps the pod references (envFrom, configMapKeyRef, configMap and projected volumes)."""
    decode_payloads: bool = True
    """Decode base64, hex and printf payloads in scripts and look inside them."""
    image_config: bool = False
    """Read each container's image config and history as read from its registry (when the operator has them)."""
    # Pre-checks over each family's patterns (see PatternSet); derived, not compared.
    image_set: PatternSet = field(init=False, repr=False, compare=False)
    host_set: PatternSet = field(init=False, repr=False, compare=False)
    process_set: PatternSet = field(init=False, repr=False, compare=False)
    argument_glob_set: PatternSet = field(init=False, repr=False, compare=False)
    argument_regex_set: PatternSet = field(init=False, repr=False, compare=False)
    wallet_glob_set: PatternSet = field(init=False, repr=False, compare=False)
    wallet_regex_set: PatternSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sets = {
            "image_set": self.images,
            "host_set": self.pool_hosts,
            "process_set": self.processes,
            "argument_glob_set": tuple(i for i in self.arguments if i.pattern.kind == "glob"),
            "argument_regex_set": tuple(i for i in self.arguments if i.pattern.kind == "regex"),
            "wallet_glob_set": tuple(i for i in self.wallet_patterns if i.pattern.kind == "glob"),
            "wallet_regex_set": tuple(i for i in self.wallet_patterns if i.pattern.kind == "regex"),
        }
        for name, indicators in sets.items():
            object.__setattr__(self, name, PatternSet(tuple(i.pattern for i in indicators)))


@dataclass(frozen=True)
class PodCpuSpec:
    """Pod CPU above ``threshold`` x reference (limit, request or cores) for ``window``."""

    threshold: float
    window: str = "5m"
    relative_to: str = "Limit"
    cores: float = 1.0
    strength: str = WEAK


@dataclass(frozen=True)
class NodeCpuSpec:
    """Node CPU above ``threshold`` x allocatable for ``window``."""

    threshold: float
    window: str = "5m"
    strength: str = WEAK


@dataclass(frozen=True)
class UnaccountedCpuSpec:
    """Node CPU not accounted for by its pods, above ``cores`` for ``window``."""

    cores: float
    window: str = "5m"
    strength: str = WEAK


@dataclass(frozen=True)
class CpuSignals:
    """The metric (Prometheus) indicators of a policy; not evaluable offline."""

    pod: PodCpuSpec | None = None
    node: NodeCpuSpec | None = None
    unaccounted: UnaccountedCpuSpec | None = None

    def kinds(self) -> tuple[str, ...]:
        """The signal kinds these specs produce, in a fixed order."""
        present = (self.pod is not None, self.node is not None, self.unaccounted is not None)
        return tuple(kind for kind, on in zip(METRIC_SIGNAL_KINDS, present, strict=True) if on)


@dataclass(frozen=True)
class MatchSpec:
    """How findings combine: ``weak_required`` distinct Weak kinds, and required kinds."""

    weak_required: int = 2
    require: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ActionSpec:
    """A containment action and when it applies (``Always`` or ``HostAccess``)."""

    name: str
    when: str = "Always"


@dataclass(frozen=True)
class Scope:
    """Which pods a policy looks at. A None selector means no constraint."""

    namespace_selector: selectors.LabelSelector | None = None
    pod_selector: selectors.LabelSelector | None = None
    excluded_namespaces: frozenset[str] = frozenset()
    excluded_pod_selector: selectors.LabelSelector | None = None


@dataclass(frozen=True)
class Policy:
    """A validated, compiled MinerPolicy."""

    name: str
    mode: str
    signals: Signals
    generation: int = 0
    uid: str = ""
    description: str = ""
    actions: tuple[ActionSpec, ...] = ()
    scope: Scope = Scope()
    match: MatchSpec = MatchSpec()
    cpu: CpuSignals | None = None
    runtime: RuntimeSignals | None = None
    """``signals.runtime``: which Falco events of a pod count (see :mod:`minerguard.domain.runtime`)."""

    @property
    def reads_text(self) -> bool:
        """Whether the policy looks at container text (programs, arguments, pool hosts or
        schemes, wallets): only such a policy reports the Weak encodedPayload and
        oversizedValue signals."""
        s = self.signals
        return bool(s.processes or s.arguments or s.pool_hosts or s.pool_schemes or s.monero or s.wallet_patterns)

    @property
    def enforce(self) -> bool:
        """True in Enforce mode."""
        return self.mode == "Enforce"

    @property
    def metric_kinds(self) -> tuple[str, ...]:
        """The metric signal kinds this policy uses (empty without cpu signals)."""
        return self.cpu.kinds() if self.cpu is not None else ()

    @property
    def caller_kinds(self) -> tuple[str, ...]:
        """The signal kinds whose findings the caller measures and passes in: CPU, then runtime."""
        return self.metric_kinds + (("runtime",) if self.runtime is not None else ())


_PATTERN_FIELDS = ("glob", "regex", "strength", "note")


def _indicator(raw: object, path: str, kind: str) -> Indicator:
    entry = mapping(raw, path)
    known_fields(entry, _PATTERN_FIELDS, path)
    glob, regex = entry.get("glob"), entry.get("regex")
    if (glob is None) == (regex is None):
        raise invalid(path, "give exactly one of glob or regex")
    key = "glob" if glob is not None else "regex"
    text = string(entry[key], f"{path}.{key}", MAX_PATTERN_LEN, min_len=1)
    try:
        pattern = compile_pattern(text if key == "glob" else None, text if key == "regex" else None)
    except PatternError as exc:
        raise invalid(f"{path}.{key}", str(exc), "InvalidRegex" if key == "regex" else "InvalidSpec") from None
    strength = read_strength(entry, path, DEFAULT_STRENGTH[kind])
    return Indicator(pattern=pattern, strength=strength, note=opt_string(entry, "note", path, 512), path=path)


def _indicators(parent: Mapping[str, Any], key: str, path: str, max_items: int, kind: str) -> tuple[Indicator, ...]:
    items = list_of(parent.get(key), f"{path}.{key}", max_items)
    return tuple(_indicator(item, f"{path}.{key}[{i}]", kind) for i, item in enumerate(items))


_HEX = frozenset("0123456789abcdef")


def _digest(raw: object, path: str) -> DigestIndicator:
    entry = mapping(raw, path)
    known_fields(entry, ("digest", "note"), path)
    if "digest" not in entry:
        raise invalid(f"{path}.digest", "is required")
    digest = string(entry["digest"], f"{path}.digest", 71)
    hex_part = digest.removeprefix("sha256:")
    if not digest.startswith("sha256:") or len(hex_part) != 64 or not set(hex_part) <= _HEX:
        raise invalid(f"{path}.digest", f"must be 'sha256:' and 64 lowercase hex digits, got {show(digest)}")
    return DigestIndicator(digest=digest, note=opt_string(entry, "note", path, 512))


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+.-")


def _scheme(raw: object, path: str) -> str:
    scheme = string(raw, path, 32, min_len=1)
    if not set(scheme) <= _SCHEME_CHARS:
        raise invalid(path, f"must be a lowercase URL scheme such as stratum+tcp, got {show(scheme)}")
    return scheme


def _port(raw: object, path: str) -> PortIndicator:
    entry = mapping(raw, path)
    known_fields(entry, ("port", "strength", "note"), path)
    if "port" not in entry:
        raise invalid(f"{path}.port", "is required")
    port = integer(entry["port"], f"{path}.port", 1, 65535)
    return PortIndicator(
        port=port,
        strength=read_strength(entry, path, DEFAULT_STRENGTH["poolPort"]),
        note=opt_string(entry, "note", path, 512),
    )


def _pools(
    raw: Mapping[str, Any] | None, path: str
) -> tuple[tuple[str, ...], tuple[Indicator, ...], tuple[PortIndicator, ...]]:
    if raw is None:
        return (), (), ()
    known_fields(raw, ("schemes", "hosts", "ports"), path)
    schemes = list_of(raw.get("schemes"), f"{path}.schemes", 32)
    ports = list_of(raw.get("ports"), f"{path}.ports", 256)
    return (
        tuple(dict.fromkeys(_scheme(s, f"{path}.schemes[{i}]") for i, s in enumerate(schemes))),
        _indicators(raw, "hosts", path, 1024, "poolHost"),
        tuple(_port(p, f"{path}.ports[{i}]") for i, p in enumerate(ports)),
    )


def _wallets(raw: Mapping[str, Any] | None, path: str) -> tuple[bool, tuple[Indicator, ...]]:
    if raw is None:
        return False, ()
    known_fields(raw, ("monero", "patterns"), path)
    monero = raw.get("monero", False)
    if not isinstance(monero, bool):
        raise invalid(f"{path}.monero", f"must be true or false, got {type_name(monero)}")
    return monero, _indicators(raw, "patterns", path, 64, "wallet")


def _pod_cpu(raw: Mapping[str, Any], path: str) -> PodCpuSpec:
    known_fields(raw, ("threshold", "window", "relativeTo", "cores", "strength"), path)
    if "threshold" not in raw:
        raise invalid(f"{path}.threshold", "is required")
    relative_to = raw.get("relativeTo")
    cores = raw.get("cores")
    return PodCpuSpec(
        threshold=number(raw["threshold"], f"{path}.threshold", 0.05, 10),
        window=read_window(raw, path),
        relative_to="Limit" if relative_to is None else enum(relative_to, f"{path}.relativeTo", RELATIVE_TO),
        cores=1.0 if cores is None else number(cores, f"{path}.cores", 0.01),
        strength=read_strength(raw, path, DEFAULT_STRENGTH["podCpu"]),
    )


def _node_cpu(raw: Mapping[str, Any], path: str) -> NodeCpuSpec:
    known_fields(raw, ("threshold", "window", "strength"), path)
    if "threshold" not in raw:
        raise invalid(f"{path}.threshold", "is required")
    return NodeCpuSpec(
        threshold=number(raw["threshold"], f"{path}.threshold", 0.05, 1),
        window=read_window(raw, path),
        strength=read_strength(raw, path, DEFAULT_STRENGTH["nodeCpu"]),
    )


def _unaccounted_cpu(raw: Mapping[str, Any], path: str) -> UnaccountedCpuSpec:
    known_fields(raw, ("cores", "window", "strength"), path)
    if "cores" not in raw:
        raise invalid(f"{path}.cores", "is required")
    return UnaccountedCpuSpec(
        cores=number(raw["cores"], f"{path}.cores", 0.05),
        window=read_window(raw, path),
        strength=read_strength(raw, path, DEFAULT_STRENGTH["nodeUnaccountedCpu"]),
    )


def _cpu(raw: Mapping[str, Any] | None, path: str) -> CpuSignals | None:
    if raw is None:
        return None
    known_fields(raw, ("pod", "node", "unaccounted"), path)
    pod, node, unaccounted = (opt_mapping(raw, key, path) for key in ("pod", "node", "unaccounted"))
    return CpuSignals(
        pod=None if pod is None else _pod_cpu(pod, f"{path}.pod"),
        node=None if node is None else _node_cpu(node, f"{path}.node"),
        unaccounted=None if unaccounted is None else _unaccounted_cpu(unaccounted, f"{path}.unaccounted"),
    )


_SIGNAL_FIELDS = (
    "images",
    "imageDigests",
    "pools",
    "processes",
    "arguments",
    "wallets",
    "cpu",
    "configMaps",
    "decodePayloads",
    "runtime",
    "imageConfig",
)


def _flag(raw: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise invalid(f"{path}.{key}", f"must be true or false, got {type_name(value)}")
    return value


def _signals(raw: Mapping[str, Any], path: str) -> tuple[Signals, CpuSignals | None]:
    known_fields(raw, _SIGNAL_FIELDS, path)
    if not raw:
        raise invalid(path, "must have at least one signal")
    digests = list_of(raw.get("imageDigests"), f"{path}.imageDigests", 4096)
    schemes, hosts, ports = _pools(opt_mapping(raw, "pools", path), f"{path}.pools")
    monero, wallet_patterns = _wallets(opt_mapping(raw, "wallets", path), f"{path}.wallets")
    signals = Signals(
        images=_indicators(raw, "images", path, 512, "image"),
        image_digests=tuple(_digest(d, f"{path}.imageDigests[{i}]") for i, d in enumerate(digests)),
        pool_schemes=schemes,
        pool_hosts=hosts,
        pool_ports=ports,
        processes=_indicators(raw, "processes", path, 512, "process"),
        arguments=_indicators(raw, "arguments", path, 512, "argument"),
        monero=monero,
        wallet_patterns=wallet_patterns,
        config_maps=_flag(raw, "configMaps", path, False),
        decode_payloads=_flag(raw, "decodePayloads", path, True),
        image_config=_flag(raw, "imageConfig", path, False),
    )
    return signals, _cpu(opt_mapping(raw, "cpu", path), f"{path}.cpu")


def _match(raw: Mapping[str, Any] | None, path: str) -> MatchSpec:
    if raw is None:
        return MatchSpec()
    known_fields(raw, ("weakSignalsRequired", "requireSignals"), path)
    weak = raw.get("weakSignalsRequired")
    required = list_of(raw.get("requireSignals"), f"{path}.requireSignals", 10)
    return MatchSpec(
        weak_required=2 if weak is None else integer(weak, f"{path}.weakSignalsRequired", 2, 10),
        require=frozenset(enum(k, f"{path}.requireSignals[{i}]", SIGNAL_KINDS) for i, k in enumerate(required)),
    )


def _action(raw: object, path: str) -> ActionSpec:
    entry = mapping(raw, path)
    known_fields(entry, ("name", "when"), path)
    if "name" not in entry:
        raise invalid(f"{path}.name", "is required")
    name = enum(entry["name"], f"{path}.name", ACTION_NAMES, "UnknownAction")
    when = entry.get("when")
    return ActionSpec(name=name, when="Always" if when is None else enum(when, f"{path}.when", WHEN_VALUES))


def _actions(raw: object, path: str) -> tuple[ActionSpec, ...]:
    actions = tuple(_action(a, f"{path}[{i}]") for i, a in enumerate(list_of(raw, path, 8)))
    seen: set[str] = set()
    for i, action in enumerate(actions):
        if action.name in seen:
            raise invalid(f"{path}[{i}].name", f"duplicate action {action.name!r}")
        seen.add(action.name)
    return actions


def _selector(parent: Mapping[str, Any], key: str, path: str) -> selectors.LabelSelector | None:
    try:
        return selectors.parse(parent.get(key), f"{path}.{key}")
    except ValueError as exc:
        raise PolicyInvalid("InvalidSelector", str(exc)) from None


def _scope(raw: Mapping[str, Any] | None, path: str) -> Scope:
    if raw is None:
        return Scope()
    known_fields(raw, ("namespaceSelector", "podSelector", "excludedNamespaces", "excludedPodSelector"), path)
    excluded = list_of(raw.get("excludedNamespaces"), f"{path}.excludedNamespaces", 256)
    return Scope(
        namespace_selector=_selector(raw, "namespaceSelector", path),
        pod_selector=_selector(raw, "podSelector", path),
        excluded_namespaces=frozenset(string(n, f"{path}.excludedNamespaces[{i}]", 63) for i, n in enumerate(excluded)),
        excluded_pod_selector=_selector(raw, "excludedPodSelector", path),
    )


def _header(obj: Mapping[str, Any]) -> tuple[str, int, str]:
    known_fields(obj, ("apiVersion", "kind", "metadata", "spec", "status"), "object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if kind is not None and kind != POLICY_KIND:
        raise invalid("kind", f"must be {POLICY_KIND}, got {show(kind)}")
    if api_version is not None and api_version != POLICY_API_VERSION:
        raise invalid("apiVersion", f"must be {POLICY_API_VERSION}, got {show(api_version)}")
    metadata = mapping(obj.get("metadata", {}), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise invalid("metadata.name", "is required")
    generation = metadata.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise invalid("metadata.generation", f"must be an integer, got {type_name(generation)}")
    uid = metadata.get("uid", "")
    return name, generation, uid if isinstance(uid, str) else ""


def parse_policy(obj: Mapping[str, Any]) -> Policy:
    """Validate and compile a whole MinerPolicy object. Raises :class:`PolicyInvalid`."""
    if not isinstance(obj, Mapping):
        raise invalid("object", f"must be an object, got {type_name(obj)}")
    name, generation, uid = _header(obj)
    if obj.get("spec") is None:
        raise invalid("spec", "is required")
    spec = mapping(obj["spec"], "spec")
    known_fields(spec, ("mode", "description", "scope", "signals", "match", "actions"), "spec")
    if "mode" not in spec:
        raise invalid("spec.mode", "is required")
    mode = enum(spec["mode"], "spec.mode", MODES)
    if spec.get("signals") is None:
        raise invalid("spec.signals", "is required")
    signals, cpu = _signals(mapping(spec["signals"], "spec.signals"), "spec.signals")
    actions = _actions(spec.get("actions"), "spec.actions")
    if mode == "Enforce" and not actions:
        raise invalid("spec.actions", "mode Enforce needs at least one action; use mode Audit to only report")
    return Policy(
        name=name,
        generation=generation,
        uid=uid,
        mode=mode,
        description=opt_string(spec, "description", "spec", 1024),
        actions=actions,
        scope=_scope(opt_mapping(spec, "scope", "spec"), "spec.scope"),
        signals=signals,
        match=_match(opt_mapping(spec, "match", "spec"), "spec.match"),
        cpu=cpu,
        runtime=parse_runtime(opt_mapping(spec["signals"], "runtime", "spec.signals"), "spec.signals.runtime"),
    )
