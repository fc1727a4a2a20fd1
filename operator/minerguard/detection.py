"""The decision: does a workload match a MinerPolicy, on what evidence, and what to do.

Pure functions of their inputs (no kopf, no Kubernetes client, no I/O, no clock), shared by
the operator and the offline ``minerguard scan``; the same inputs always give the same
verdict with the same evidence in the same order.

Rules
-----
1. **Scope** (:func:`in_scope`): a workload in one of ``scope.excludedNamespaces`` or whose
   labels match ``scope.excludedPodSelector`` is never evaluated. A ``namespaceSelector``
   must match the namespace's labels; when those are unknown (``None``, e.g. offline), a
   policy with a non-empty namespaceSelector does not apply. A ``podSelector`` must match
   the pod's labels. A missing selector is no constraint; ``{}`` selects everything (so
   ``excludedPodSelector: {}`` excludes every pod, as in Kubernetes).
2. **Findings** (:func:`spec_findings`): every container of every kind (containers,
   initContainers, ephemeralContainers) is read, in order; per container the signal kinds
   come in the order image, imageDigest, poolEndpoint, poolHost, poolPort, process,
   argument, wallet. A finding is one (signal kind, container, matched value): found twice,
   it is reported once, Strong if any of the indicators that found it is Strong.

   * *image*: each image pattern is tried on the whole reference
     (``docker.io/foo/xmrig:6.21``) and on its part after the last ``/`` (``xmrig:6.21``),
     so both ``*xmrig*`` and ``xmrig:*`` work.
   * *imageDigest*: the ``@sha256:...`` of the image reference and every ``sha256:<64 hex>``
     inside the container status ``imageID``.
   * *pools*: command, args and literal env values are cut into tokens (on whitespace,
     quotes, ``; | & ( ) < > { } ` , =``). A URL whose scheme is listed (``stratum+tcp://...``)
     is a *poolEndpoint*. Hosts of URLs and of ``host:port`` tokens are matched against the
     pool host patterns (*poolHost*). A listed port counts (*poolPort*) only in a
     ``host:port`` token or a URL whose scheme is not http, https, ws or wss, and never for
     a loopback or listen-all host (``localhost``, ``127.x``, ``0.0.0.0``); a bare number is
     never a port.
   * *process*: base names of command[0] (or args[0] without a command) and, for
     ``sh -c``/``bash -c`` style invocations, of the programs of the shell script: the
     first word of every command (after ``;``, ``|``, ``&``, ``(``, newlines, backquotes),
     the program after wrappers such as ``nohup``, ``exec``, ``env``, ``timeout`` or another
     shell, and every word that looks like a path (``/tmp/x``, ``./x``).
   * *argument*: a glob is matched against every command/args item and every word inside
     it; a regex is searched in the command line (command and args joined by spaces).
   * *wallet*: with ``monero: true``, any run of exactly 95 or 106 base58 characters
     starting with 4 or 8 in command, args or literal env values; further wallet patterns
     (regex searched in each value, glob matched against each word). Shown shortened.
3. **Match** (:func:`evaluate`): in scope, and at least one Strong finding or Weak findings
   of at least ``match.weakSignalsRequired`` distinct kinds, and every kind of
   ``match.requireSignals`` among the findings. Metric findings (CPU, from Prometheus) are
   measured by the caller against this policy's thresholds and passed in; they count like
   spec ones, but only for the kinds the policy declares under ``signals.cpu``.
4. **Actions**: none in Audit mode. In Enforce mode the policy's actions in order, minus
   those with ``when: HostAccess`` when the pod has no host access (privileged, hostPID,
   hostIPC, hostNetwork or a hostPath volume).
5. **Nodes** (:func:`evaluate_node`): node-level CPU findings (``nodeCpu``,
   ``nodeUnaccountedCpu``) are judged for the node itself, with the same match rule. Pod
   scope does not apply to a node, but a policy narrowed to some pods (a non-empty
   ``podSelector`` or ``namespaceSelector``) never judges nodes. Only the node actions
   (``cordon``, ``taint``) are taken, whatever their ``when``: a miner outside any pod has
   the host by definition.

Scanning is bounded: each value is cut to 64 KiB (see :mod:`minerguard.patterns`) and at
most :data:`MAX_TOKENS` tokens per container are examined per signal family.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from minerguard.models import SPEC_SIGNAL_KINDS, ContainerView, Indicator, Policy, Workload
from minerguard.patterns import bounded

__all__ = [
    "MAX_TOKENS",
    "Evidence",
    "Verdict",
    "evaluate",
    "evaluate_node",
    "in_scope",
    "shell_programs",
    "shorten",
    "spec_findings",
    "words",
]

STRONG = "Strong"
WEAK = "Weak"
MAX_TOKENS = 20000
"""Tokens examined per container and signal family; the rest are ignored."""

ELLIPSIS = "…"


def shorten(text: str, limit: int = 200) -> str:
    """``text`` if it fits in ``limit`` characters, else its head and tail around an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    keep = limit - 1
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


@dataclass(frozen=True)
class Evidence:
    """One finding: its signal kind, strength, container and a short human ``detail``.

    ``value`` is the matched value (spec signals) or the measured value (metric signals);
    ``query`` and ``window`` describe a metric signal. ``detail`` is at most 200 characters.
    """

    signal: str
    strength: str
    container: str
    detail: str
    query: str = ""
    value: str = ""
    window: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", shorten(self.detail))

    def to_dict(self) -> dict[str, str]:
        """The evidence as a dict, without empty optional keys."""
        out = {"signal": self.signal, "strength": self.strength, "container": self.container, "detail": self.detail}
        for key in ("query", "value", "window"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Verdict:
    """The outcome of one policy on one workload."""

    policy: str
    matched: bool
    mode: str
    evidence: tuple[Evidence, ...]
    actions: tuple[str, ...]
    reason: str


# ---------------------------------------------------------------------------------------
# Scope


def in_scope(policy: Policy, workload: Workload, namespace_labels: Mapping[str, str] | None) -> bool:
    """Whether the policy applies to the workload (rule 1 of the module docstring)."""
    scope = policy.scope
    if workload.namespace in scope.excluded_namespaces:
        return False
    if scope.excluded_pod_selector is not None and scope.excluded_pod_selector.matches(workload.labels):
        return False
    selector = scope.namespace_selector
    if selector is not None and not selector.is_empty:
        if namespace_labels is None or not selector.matches(namespace_labels):
            return False
    return scope.pod_selector is None or scope.pod_selector.matches(workload.labels)


# ---------------------------------------------------------------------------------------
# Tokenising

_WORD_SEPARATORS = " \t\n\r\v\f'\"`;|&()<>{}"
_WORD_TABLE = str.maketrans(dict.fromkeys(_WORD_SEPARATORS, " "))
_POOL_TABLE = str.maketrans(dict.fromkeys(_WORD_SEPARATORS + ",=", " "))


def words(text: str) -> list[str]:
    """Shell-ish words of a value: split on whitespace, quotes and ``; | & ( ) < > { }`` and backquotes."""
    return bounded(text).translate(_WORD_TABLE).split()


def _pool_tokens(text: str) -> list[str]:
    return bounded(text).translate(_POOL_TABLE).split()


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox"})
_WRAPPERS = SHELLS | frozenset(
    {"nohup", "exec", "env", "sudo", "nice", "ionice", "timeout", "setsid", "time", "command", "stdbuf", "taskset"}
)
_COMMAND_BREAKS = frozenset(";|&()`\n")
_QUOTES_AND_SPACE = frozenset(" \t\r\v\f'\"<>{}")
_PATH_PREFIXES = ("/", "./", "../", "~/")


def _shell_words(script: str) -> Iterator[tuple[str, bool]]:
    """Words of a shell script, each with whether it starts a command."""
    current: list[str] = []
    starts = True
    for char in bounded(script):
        if char in _COMMAND_BREAKS or char in _QUOTES_AND_SPACE:
            if current:
                yield "".join(current), starts
                current, starts = [], False
            if char in _COMMAND_BREAKS:
                starts = True
        else:
            current.append(char)
    if current:
        yield "".join(current), starts


def _is_option(word: str) -> bool:
    return word.startswith("-") or "=" in word or word.replace(".", "").isdigit()


def shell_programs(script: str) -> list[str]:
    """Base names of the programs a shell script runs (see rule 2, *process*), in order."""
    programs: list[str] = []
    expect_program = False
    for count, (word, starts) in enumerate(_shell_words(script)):
        if count >= MAX_TOKENS:
            break
        if starts:
            expect_program = True
        if expect_program and _is_option(word):
            continue  # VAR=value prefixes, wrapper options such as -n 10 or -c
        if expect_program or word.startswith(_PATH_PREFIXES):
            name = _base(word)
            if name:
                programs.append(name)
            expect_program = expect_program and name in _WRAPPERS
    return programs


def _is_shell_c_flag(word: str) -> bool:
    return len(word) > 1 and word[0] == "-" and word[1] != "-" and word[1:].isalpha() and "c" in word


def _argv(container: ContainerView) -> list[tuple[str, str]]:
    return [("command", item) for item in container.command] + [("args", item) for item in container.args]


def _shell_index(argv: Sequence[tuple[str, str]]) -> int | None:
    """Index of the shell among the first words of argv (``sh``, ``/bin/bash``, ``busybox``), if any."""
    return next((i for i, (_, word) in enumerate(argv[:4]) if _base(word) in SHELLS), None)


def _shell_scripts(argv: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(where, script) of a ``sh -c SCRIPT`` style invocation, if argv is one."""
    index = _shell_index(argv)
    if index is None:
        return []
    for flag_index in range(index + 1, len(argv) - 1):
        if _is_shell_c_flag(argv[flag_index][1]):
            return [argv[flag_index + 1]]
    return []


def _shell_script_file(argv: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """(where, path) of the script file of ``sh SCRIPT`` (a shell without ``-c``), if argv is one."""
    index = _shell_index(argv)
    if index is None or _shell_scripts(argv):
        return None
    for where, word in argv[index + 1 : index + 8]:
        if not word.startswith("-") and _base(word) not in SHELLS:
            return where, word
    return None


# ---------------------------------------------------------------------------------------
# Findings


class _Collector:
    """Evidence in first-seen order, one per (signal, container, key), Strong winning over Weak."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], Evidence] = {}

    def add(self, evidence: Evidence, key: str) -> None:
        slot = (evidence.signal, evidence.container, key)
        existing = self._items.get(slot)
        if existing is None or (existing.strength == WEAK and evidence.strength == STRONG):
            self._items[slot] = evidence

    def result(self) -> tuple[Evidence, ...]:
        return tuple(self._items.values())


def _with_note(detail: str, indicator_note: str) -> str:
    return f"{detail} ({indicator_note})" if indicator_note else detail


def _sources(container: ContainerView) -> list[tuple[str, str]]:
    """(where, text) of every command item, args item and literal env value."""
    env = [(f"env {name}" if name else "env", value) for name, value in container.env]
    return _argv(container) + env


class _Scan:
    """The findings of one policy in one container."""

    def __init__(self, policy: Policy, container: ContainerView, out: _Collector) -> None:
        self.signals = policy.signals
        self.container = container
        self.out = out

    def emit(self, signal: str, strength: str, detail: str, value: str, key: str | None = None) -> None:
        evidence = Evidence(signal=signal, strength=strength, container=self.container.name, detail=detail, value=value)
        self.out.add(evidence, value if key is None else key)

    def run(self) -> None:
        self.images()
        self.digests()
        self.pools()
        self.processes()
        self.arguments()
        self.wallets()

    def images(self) -> None:
        image = self.container.image
        if not image:
            return
        tail = image.rsplit("/", 1)[-1]
        if not self.signals.image_set.may_match(image) and not self.signals.image_set.may_match(tail):
            return
        for indicator in self.signals.images:
            if indicator.pattern.matches(image) or indicator.pattern.matches(tail):
                self.emit("image", indicator.strength, _with_note(f"image {image}", indicator.note), image)

    def digests(self) -> None:
        if not self.signals.image_digests:
            return
        found = [(d, "image") for d in _digests_in(self.container.image.partition("@")[2])]
        found += [(d, "imageID") for d in _digests_in(self.container.image_id)]
        for digest, where in found:
            for indicator in self.signals.image_digests:
                if indicator.digest == digest:
                    detail = _with_note(f"image digest {digest} in {where}", indicator.note)
                    self.emit("imageDigest", STRONG, detail, digest)

    def pools(self) -> None:
        signals = self.signals
        if not (signals.pool_schemes or signals.pool_hosts or signals.pool_ports):
            return
        budget = MAX_TOKENS
        for where, text in _sources(self.container):
            tokens = _pool_tokens(text)[:budget]
            for token in tokens:
                self.pool_token(token, where)
            budget -= len(tokens)
            if budget <= 0:
                return

    def pool_token(self, token: str, where: str) -> None:
        if ":" not in token:  # neither a URL nor host:port
            return
        endpoint = _parse_endpoint(token)
        if endpoint is None:
            return
        scheme, host, port = endpoint
        if scheme in self.signals.pool_schemes:
            self.emit("poolEndpoint", STRONG, f"pool URL {token} in {where}", token)
        hosts = self.signals.pool_hosts if host and self.signals.host_set.may_match(host) else ()
        for indicator in hosts:
            if indicator.pattern.matches(host):
                self.emit(
                    "poolHost", indicator.strength, _with_note(f"pool host {host} in {where}", indicator.note), host
                )
        if port is None or scheme in _WEB_SCHEMES or _is_local(host):
            return
        for port_indicator in self.signals.pool_ports:
            if port_indicator.port == port:
                detail = _with_note(f"pool port {port} in {token} in {where}", port_indicator.note)
                self.emit("poolPort", port_indicator.strength, detail, str(port), key=f"{host}:{port}")

    def processes(self) -> None:
        if not self.signals.processes:
            return
        for where, name in _programs(self.container)[:MAX_TOKENS]:
            if not self.signals.process_set.may_match(name):
                continue
            for indicator in self.signals.processes:
                if indicator.pattern.matches(name):
                    self.emit(
                        "process", indicator.strength, _with_note(f'process "{name}" in {where}', indicator.note), name
                    )

    def arguments(self) -> None:
        indicators = self.signals.arguments
        globs = [i for i in indicators if i.pattern.kind == "glob"]
        if globs:
            prefilter = self.signals.argument_glob_set
            for where, token in _argument_tokens(self.container)[:MAX_TOKENS]:
                if prefilter.may_match(token):
                    self.argument_token(globs, where, token)
        regexes = [i for i in indicators if i.pattern.kind == "regex"]
        line = " ".join(self.container.command + self.container.args)
        for indicator in regexes:
            found = indicator.pattern.find(line)
            if found is not None:
                text = found.strip() or found
                detail = _with_note(f'argument "{text}" in command line', indicator.note)
                self.emit("argument", indicator.strength, detail, shorten(text, 120))

    def argument_token(self, globs: Sequence[Indicator], where: str, token: str) -> None:
        for indicator in globs:
            if indicator.pattern.matches(token):
                detail = _with_note(f'argument "{token}" in {where}', indicator.note)
                self.emit("argument", indicator.strength, detail, shorten(token, 120))

    def wallets(self) -> None:
        signals = self.signals
        if not (signals.monero or signals.wallet_patterns):
            return
        for where, text in _sources(self.container):
            if signals.monero:
                for address in _monero_addresses(text):
                    short = _short_wallet(address)
                    self.emit("wallet", STRONG, f"Monero wallet {short} in {where}", short, key=address)
            for indicator in signals.wallet_patterns:
                self.wallet_pattern(indicator, where, text)

    def wallet_pattern(self, indicator: Indicator, where: str, text: str) -> None:
        if indicator.pattern.kind == "regex":
            found = [indicator.pattern.find(text, prefer_group=True)]
        else:
            found = [w for w in words(text)[:MAX_TOKENS] if indicator.pattern.matches(w)]
        for wallet in found:
            if wallet:
                short = _short_wallet(wallet)
                self.emit(
                    "wallet",
                    indicator.strength,
                    _with_note(f"wallet {short} in {where}", indicator.note),
                    short,
                    wallet,
                )


_HEX = frozenset("0123456789abcdef")


def _digests_in(text: str) -> list[str]:
    """Every ``sha256:<64 lowercase hex>`` in text, in order."""
    found: list[str] = []
    lowered = bounded(text).lower()
    start = lowered.find("sha256:")
    while start >= 0 and len(found) < 64:
        candidate = lowered[start + 7 : start + 71]
        if len(candidate) == 64 and set(candidate) <= _HEX:
            found.append("sha256:" + candidate)
        start = lowered.find("sha256:", start + 7)
    return found


_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+.-")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_")


def _split_host_port(authority: str) -> tuple[str, int | None] | None:
    """Host and port of ``host``, ``host:port`` or ``[v6]:port``; None when it is not one."""
    authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            return None
    else:
        host, colon, port_text = authority.partition(":")
        if colon and not port_text:
            return None
        if not host or not set(host) <= _HOST_CHARS:
            return None
    if not port_text:
        return host.rstrip("."), None
    if len(port_text) > 5 or not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        return None
    return host.rstrip("."), int(port_text)


def _url_scheme(prefix: str) -> str:
    """The URL scheme that ends ``prefix`` (the text before ``://``), lowercased, or ''."""
    start = len(prefix)
    while start > 0 and prefix[start - 1] in _SCHEME_CHARS:
        start -= 1
    scheme = prefix[start:]
    while scheme and not scheme[0].isalpha():
        scheme = scheme[1:]
    return scheme


def _parse_endpoint(token: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL token, or ('', host, port) of a host:port token."""
    lowered = token.lower()
    prefix, sep, rest = lowered.partition("://")
    if sep:
        scheme = _url_scheme(prefix)
        if not scheme:
            return None
        authority = rest
        for stop in "/?#":
            authority = authority.partition(stop)[0]
        parsed = _split_host_port(authority)
        return (scheme, "", None) if parsed is None else (scheme, parsed[0], parsed[1])
    parsed = _split_host_port(lowered.rstrip("/"))
    if parsed is None or parsed[1] is None or not _looks_like_host(parsed[0]):
        return None
    return "", parsed[0], parsed[1]


def _looks_like_host(host: str) -> bool:
    if any(c.isalpha() for c in host):
        return host[0].isalnum() and host[-1].isalnum()
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p[:4]) < 256 for p in parts)


def _is_local(host: str) -> bool:
    return host in ("", "localhost", "0.0.0.0", "::", "::1") or host.startswith("127.")  # noqa: S104


def _programs(container: ContainerView) -> list[tuple[str, str]]:
    """(where, base name) of the programs a container runs."""
    found: list[tuple[str, str]] = []
    if container.command:
        found.append(("command", _base(container.command[0])))
    elif container.args:
        found.append(("args", _base(container.args[0])))
    argv = _argv(container)
    for where, script in _shell_scripts(argv):
        found += [(f"shell script in {where}", name) for name in shell_programs(script)]
    script_file = _shell_script_file(argv)
    if script_file is not None:
        found.append((script_file[0], _base(script_file[1])))
    return [(where, name) for where, name in found if name]


def _argument_tokens(container: ContainerView) -> list[tuple[str, str]]:
    """(where, token): every command/args item, then the words inside it when it has several."""
    tokens: list[tuple[str, str]] = []
    for where, item in _argv(container):
        tokens.append((where, item))
        split = words(item)
        if len(split) > 1 or (split and split[0] != item):
            tokens += [(where, word) for word in split]
    return tokens


_BASE58 = frozenset("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


class _Base58Table(dict[int, str]):
    """A str.translate table that keeps base58 characters and turns everything else into a space."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = char if char in _BASE58 else " "
        if len(self) < 4096:
            self[code] = value
        return value


_BASE58_TABLE = _Base58Table()


def _monero_addresses(text: str) -> list[str]:
    """Maximal base58 runs of 95 or 106 characters starting with 4 or 8."""
    runs = bounded(text).translate(_BASE58_TABLE).split()
    return [run for run in runs if len(run) in (95, 106) and run[0] in "48"]


def _short_wallet(wallet: str) -> str:
    return wallet if len(wallet) <= 20 else f"{wallet[:8]}{ELLIPSIS}{wallet[-6:]}"


def spec_findings(policy: Policy, workload: Workload) -> tuple[Evidence, ...]:
    """Every spec signal of the policy found in the workload, in a deterministic order."""
    out = _Collector()
    for container in workload.containers:
        _Scan(policy, container, out).run()
    return out.result()


# ---------------------------------------------------------------------------------------
# Verdict


def _label(evidence: Evidence) -> str:
    return f"{evidence.signal} {shorten(evidence.value or evidence.detail, 60)}"


def _listing(items: Sequence[Evidence], limit: int = 3) -> str:
    text = ", ".join(_label(e) for e in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _weak_kinds(evidence: Iterable[Evidence]) -> list[Evidence]:
    """The first Weak finding of each kind, in order."""
    first: dict[str, Evidence] = {}
    for item in evidence:
        if item.strength == WEAK:
            first.setdefault(item.signal, item)
    return list(first.values())


def _decide(policy: Policy, evidence: Sequence[Evidence]) -> tuple[bool, str]:
    strong = [e for e in evidence if e.strength == STRONG]
    weak = _weak_kinds(evidence)
    kinds = {e.signal for e in evidence}
    missing = sorted(policy.match.require - kinds, key=_kind_order)
    if strong:
        matched, reason = True, f"{_plural(len(strong), 'strong signal')}: {_listing(strong)}"
    elif len(weak) >= policy.match.weak_required:
        matched, reason = True, f"{_plural(len(weak), 'weak signal kind')}: {_listing(weak)}"
    elif weak:
        needed = policy.match.weak_required
        matched, reason = False, f"{_plural(len(weak), 'weak signal kind')} of {needed} needed: {_listing(weak)}"
    else:
        matched, reason = False, "no signals found"
    if missing:
        return False, f"required signal kinds missing ({', '.join(missing)}); {reason}"
    return matched, reason


_ORDER = {kind: index for index, kind in enumerate((*SPEC_SIGNAL_KINDS, "podCpu", "nodeCpu", "nodeUnaccountedCpu"))}


def _kind_order(kind: str) -> tuple[int, str]:
    return _ORDER.get(kind, len(_ORDER)), kind


def _actions(policy: Policy, workload: Workload) -> tuple[str, ...]:
    if not policy.enforce:
        return ()
    return tuple(a.name for a in policy.actions if a.when != "HostAccess" or workload.host_access)


NODE_SIGNAL_KINDS = frozenset({"nodeCpu", "nodeUnaccountedCpu"})
NODE_ACTIONS = frozenset({"cordon", "taint"})


def _judges_nodes(policy: Policy) -> bool:
    scope = policy.scope
    return all(s is None or s.is_empty for s in (scope.pod_selector, scope.namespace_selector))


def evaluate_node(
    policy: Policy,
    node: str,
    node_labels: Mapping[str, str] | None,
    metric_findings: Sequence[Evidence],
) -> Verdict:
    """The verdict of one policy on a node, from node-level CPU findings (rule 5).

    ``node_labels`` are accepted for symmetry with :func:`evaluate`; the MinerPolicy
    contract has no node selector, so they do not change the verdict today.
    """
    del node_labels  # no node selector in the contract (see the docstring)
    if not _judges_nodes(policy):
        return Verdict(
            policy=policy.name, matched=False, mode=policy.mode, evidence=(), actions=(), reason="not in scope"
        )
    kinds = NODE_SIGNAL_KINDS.intersection(policy.metric_kinds)
    evidence = tuple(dict.fromkeys(e for e in metric_findings if e.signal in kinds))
    matched, reason = _decide(policy, evidence)
    actions = tuple(a.name for a in policy.actions if a.name in NODE_ACTIONS) if matched and policy.enforce else ()
    return Verdict(
        policy=policy.name,
        matched=matched,
        mode=policy.mode,
        evidence=evidence,
        actions=actions,
        reason=shorten(f"node {node}: {reason}", 300),
    )


def evaluate(
    policy: Policy,
    workload: Workload,
    namespace_labels: Mapping[str, str] | None,
    metric_findings: Sequence[Evidence] = (),
) -> Verdict:
    """The verdict of one policy on one workload (rules 1 to 4 of the module docstring).

    ``metric_findings`` are the caller's CPU findings for this policy; those of a kind the
    policy does not declare under ``signals.cpu`` are ignored. The evidence lists every
    finding, also when the workload does not match.
    """
    if not in_scope(policy, workload, namespace_labels):
        return Verdict(
            policy=policy.name, matched=False, mode=policy.mode, evidence=(), actions=(), reason="not in scope"
        )
    evidence = spec_findings(policy, workload)
    kinds = policy.metric_kinds
    evidence += tuple(dict.fromkeys(e for e in metric_findings if e.signal in kinds and e not in evidence))
    matched, reason = _decide(policy, evidence)
    return Verdict(
        policy=policy.name,
        matched=matched,
        mode=policy.mode,
        evidence=evidence,
        actions=_actions(policy, workload) if matched else (),
        reason=shorten(reason, 300),
    )
