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

Bounds
------
Whatever the pod, the work is bounded and the verdict does not depend on how it is done:

* the workload view holds at most 1 MiB of container text per pod, shared fairly between
  containers, each value cut to 64 KiB (see :mod:`minerguard.models`), and RE2 matches in
  linear time with bounded programs (see :mod:`minerguard.patterns`);
* at most :data:`MAX_TOKENS` distinct tokens per container are examined per signal family
  (a token seen twice in a container is examined once, where it is first seen);
* at most :data:`MAX_EVIDENCE_PER_KIND` findings of each signal kind are kept in a verdict
  (the first ones, plus the first Strong one when none of those is); scanning for a kind
  stops once nothing more can be kept. The match decision is the same as with every
  finding, only the count in ``reason`` is lower;
* ``detail`` and ``value`` of each finding are made printable and cut to 200 characters
  (:class:`Evidence`).

Tokenising is done once per workload and shared by the policies evaluated on it in turn
(the last few workloads are kept), and every family of patterns is pre-checked with one
RE2 pass over all the values of the pod, then of each container, so that a policy costs
a few passes over the pod's text unless something in it looks like a match.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from minerguard.models import SPEC_SIGNAL_KINDS, ContainerView, Indicator, Policy, Workload
from minerguard.patterns import PatternSet, bounded, compile_regex

__all__ = [
    "MAX_DETAIL",
    "MAX_EVIDENCE_PER_KIND",
    "MAX_TOKENS",
    "Evidence",
    "Verdict",
    "evaluate",
    "evaluate_node",
    "in_scope",
    "printable",
    "shell_programs",
    "shorten",
    "spec_findings",
    "words",
]

STRONG = "Strong"
WEAK = "Weak"
MAX_TOKENS = 20000
"""Distinct tokens examined per container and signal family; the rest are ignored."""

ELLIPSIS = "…"
MAX_DETAIL = 200
"""Longest evidence ``detail`` and ``value``, in characters."""


def printable(text: str) -> str:
    """``text`` with every non-printable character (control characters, line breaks, bidi
    overrides, lone surrogates, spaces other than the plain one) written as a Python escape
    such as ``\\x1b`` or ``\\u202e``, so that it shows as one line and as what it is."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escaped(char) for char in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
    ``query`` and ``window`` describe a metric signal. ``detail``, ``value`` and
    ``container`` are made :func:`printable` and shortened with an ellipsis in the middle:
    ``detail`` and ``value`` to at most :data:`MAX_DETAIL` (200) characters, ``container``
    to 253. Evidence only ever quotes what matched (a token, a host, a program name, a
    shortened wallet), never a whole value, and never anything from ``valueFrom``: Secret
    and ConfigMap references are not read at all.
    """

    signal: str
    strength: str
    container: str
    detail: str
    query: str = ""
    value: str = ""
    window: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", shorten(printable(self.detail), MAX_DETAIL))
        object.__setattr__(self, "value", shorten(printable(self.value), MAX_DETAIL))
        object.__setattr__(self, "container", shorten(printable(self.container), 253))

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
_WHITESPACE = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Every character ``str.split()`` splits on."""
_LINE_TABLE = str.maketrans(dict.fromkeys(_WORD_SEPARATORS + _WHITESPACE, "\n"))
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

MAX_EVIDENCE_PER_KIND = 50
"""Findings kept per signal kind in one verdict: the first ones, and the first Strong one."""


class _Collector:
    """Evidence in first-seen order, one per (signal, container, key), Strong winning over Weak.

    At most :data:`MAX_EVIDENCE_PER_KIND` findings of a kind are kept, and past that only
    the first Strong one of the kind when none was kept yet: the verdict does not change
    (it depends on whether a Strong finding exists and on which kinds were found).
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], Evidence] = {}
        self._counts: dict[str, int] = {}
        self._strong: set[str] = set()
        self.changes = 0
        """How many times a finding was kept or made Strong."""

    def saturated(self, signal: str, strength: str) -> bool:
        """Whether a new finding of this kind and strength would be dropped."""
        return self._counts.get(signal, 0) >= MAX_EVIDENCE_PER_KIND and (strength != STRONG or signal in self._strong)

    def full(self, signal: str, strong_possible: bool = True) -> bool:
        """Whether every further finding of this kind would be dropped (``strong_possible``:
        whether a Strong finding of the kind can still come)."""
        return self.saturated(signal, STRONG if strong_possible else WEAK)

    def add(self, evidence: Evidence, key: str) -> None:
        signal = evidence.signal
        slot = (signal, evidence.container, key)
        existing = self._items.get(slot)
        if existing is not None:
            if existing.strength == WEAK and evidence.strength == STRONG:
                self._items[slot] = evidence
                self._strong.add(signal)
                self.changes += 1
            return
        if self.saturated(signal, evidence.strength):
            return
        self._items[slot] = evidence
        self._counts[signal] = self._counts.get(signal, 0) + 1
        self.changes += 1
        if evidence.strength == STRONG:
            self._strong.add(signal)

    def result(self) -> tuple[Evidence, ...]:
        return tuple(self._items.values())


def _with_note(detail: str, indicator_note: str) -> str:
    return f"{detail} ({indicator_note})" if indicator_note else detail


def _sources(container: ContainerView) -> list[tuple[str, str]]:
    """(where, text) of every command item, args item and literal env value."""
    env = [(f"env {name}" if name else "env", value) for name, value in container.env]
    return _argv(container) + env


def _distinct(pairs: Iterable[tuple[str, str]], limit: int = MAX_TOKENS) -> list[tuple[str, str]]:
    """(where, value) pairs with each value once, where it is first seen; at most ``limit`` values."""
    seen: dict[str, str] = {}
    for where, value in pairs:
        if value not in seen:
            seen[value] = where
            if len(seen) >= limit:
                break
    return [(where, value) for value, where in seen.items()]


@dataclass(frozen=True)
class _Endpoint:
    """A URL or host:port token of a container: where it is, its scheme, host and port."""

    where: str
    token: str
    scheme: str
    host: str
    port: int | None


class _Text:
    """The work on one container that does not depend on the policy (tokens, programs,
    endpoints, addresses), each done on first use and then shared by every policy."""

    def __init__(self, container: ContainerView) -> None:
        self.container = container
        self._lines: dict[str, str] = {}

    @cached_property
    def sources(self) -> list[tuple[str, str]]:
        return _sources(self.container)

    @cached_property
    def images(self) -> list[str]:
        """The image reference and its part after the last ``/``."""
        image = self.container.image
        tail = image.rsplit("/", 1)[-1]
        return [] if not image else [image] if tail == image else [image, tail]

    @cached_property
    def digests(self) -> list[tuple[str, str]]:
        found = [(d, "image") for d in _digests_in(self.container.image.partition("@")[2])]
        return found + [(d, "imageID") for d in _digests_in(self.container.image_id)]

    @cached_property
    def endpoints(self) -> list[_Endpoint]:
        sources = ((where, text) for where, text in self.sources if ":" in text)
        tokens = ((where, t) for where, text in sources for t in _pool_tokens(text) if ":" in t)
        found = []
        for where, token in _distinct(tokens):
            parsed = _parse_endpoint(token)
            if parsed is not None:
                found.append(_Endpoint(where, token, *parsed))
        return found

    @cached_property
    def programs(self) -> list[tuple[str, str]]:
        return _distinct(_programs(self.container))

    @cached_property
    def argument_tokens(self) -> list[tuple[str, str]]:
        return _distinct(_argument_tokens(self.container))

    @cached_property
    def command_line(self) -> str:
        return " ".join(self.container.command + self.container.args)

    @cached_property
    def addresses(self) -> list[list[str]]:
        """The Monero addresses in each source."""
        if not _MONERO_RUNS.may_match_lines(self.lines("sources")):
            return [[] for _ in self.sources]
        return [_monero_addresses(text) if len(text) >= 95 else [] for _, text in self.sources]

    @cached_property
    def source_words(self) -> list[list[str]]:
        return [words(text)[:MAX_TOKENS] for _, text in self.sources]

    def lines(self, family: str) -> str:
        """The values of a family joined by newlines, for :meth:`PatternSet.may_match_lines`."""
        joined = self._lines.get(family)
        if joined is None:
            joined = self._lines[family] = "\n".join(_FAMILIES[family](self))
        return joined


_FAMILIES: dict[str, Callable[[_Text], Iterable[str]]] = {
    "images": lambda t: t.images,
    "hosts": lambda t: (e.host for e in t.endpoints if e.host),
    "programs": lambda t: (name for _, name in t.programs),
    "arguments": lambda t: _with_words("\n".join(t.container.command + t.container.args)),
    "command_line": lambda t: (t.command_line,),
    "sources": lambda t: (text for _, text in t.sources),
    "words": lambda t: _with_words(t.lines("sources"))[1:],
}
"""Per family, the values that a pattern set is pre-checked on. The word families give
the values themselves and then their words, one per line (see :func:`_with_words`)."""


def _with_words(lines: str) -> tuple[str, str]:
    """Values joined by newlines, and the same with every word on its own line: together,
    a line for every value and for every word that :func:`words` finds in one (the values
    are already cut to 64 KiB by the workload view)."""
    return lines, lines.translate(_LINE_TABLE)


class _Prepared:
    """The policy-independent work on a workload: one :class:`_Text` per container."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.texts = [_Text(container) for container in workload.containers]
        self._lines: dict[str, str] = {}

    def lines(self, family: str) -> str:
        """The values of a family in every container, joined by newlines."""
        joined = self._lines.get(family)
        if joined is None:
            joined = self._lines[family] = "\n".join(text.lines(family) for text in self.texts)
        return joined


_PREPARED_KEPT = 4
"""Workloads whose preparation is kept; the caller evaluates one workload against every policy in turn."""
_prepared: OrderedDict[int, _Prepared] = OrderedDict()
_prepared_lock = threading.Lock()


def _prepare(workload: Workload) -> _Prepared:
    """The preparation of a workload, shared by the policies evaluated on it one after the other."""
    key = id(workload)
    with _prepared_lock:
        found = _prepared.get(key)
        if found is not None and found.workload is workload:
            _prepared.move_to_end(key)
            return found
    prepared = _Prepared(workload)
    with _prepared_lock:
        _prepared[key] = prepared  # holds the workload, so its id is not reused while kept
        _prepared.move_to_end(key)
        while len(_prepared) > _PREPARED_KEPT:
            _prepared.popitem(last=False)
    return prepared


_CHUNK = 32
"""Values pre-checked together by :func:`_may_match_each`."""


def _may_match_each(patterns: PatternSet, values: Sequence[str]) -> Iterator[bool]:
    """``patterns.may_match(value)`` for each value in turn, with one RE2 pass for every
    :data:`_CHUNK` values, and one pass per value only in the chunks where that finds something."""
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        if len(chunk) > 1 and not patterns.may_match_lines("\n".join(chunk)):
            yield from (False for _ in chunk)
        else:
            yield from (patterns.may_match(value) for value in chunk)


class _Scan:
    """The findings of one policy in one workload.

    Each family of signals is first checked with one RE2 pass over all the values of the
    pod, then of each container, then of each run of :data:`_CHUNK` values
    (:meth:`PatternSet.may_match_lines`), and the values are tried one by one only where
    that finds something; the result is the same as trying every value.
    """

    def __init__(self, policy: Policy, prepared: _Prepared, out: _Collector) -> None:
        self.signals = signals = policy.signals
        self.prepared = prepared
        self.out = out
        self.single = len(prepared.texts) == 1
        self.text: _Text  # the container being read, set by run()
        strengths = {
            "poolHost": [i.strength for i in signals.pool_hosts],
            "poolPort": [i.strength for i in signals.pool_ports],
            "process": [i.strength for i in signals.processes],
            "argument": [i.strength for i in signals.arguments],
            "wallet": [i.strength for i in signals.wallet_patterns] + ([STRONG] if signals.monero else []),
        }
        self.strong_possible = {kind: STRONG in found for kind, found in strengths.items()}
        globs = signals.argument_glob_set
        regexes = signals.argument_regex_set
        wallet_globs, wallet_regexes = signals.wallet_glob_set, signals.wallet_regex_set
        self.on = {
            "images": self.pod_hit(signals.image_set, "images"),
            "hosts": self.pod_hit(signals.host_set, "hosts"),
            "programs": self.pod_hit(signals.process_set, "programs"),
            "arguments": self.pod_hit(globs, "arguments"),
            "command_line": self.pod_hit(regexes, "command_line"),
            "sources": self.pod_hit(wallet_regexes, "sources"),
            "words": self.pod_hit(wallet_globs, "words"),
        }

    def done(self, signal: str) -> bool:
        """Whether nothing more can be added for this signal kind (see :class:`_Collector`)."""
        return self.out.full(signal, self.strong_possible.get(signal, True))

    def pod_hit(self, patterns: PatternSet, family: str) -> bool:
        return bool(patterns.patterns) and patterns.may_match_lines(self.prepared.lines(family))

    def hit(self, patterns: PatternSet, family: str) -> bool:
        """Whether some value of the family in the current container may match."""
        if not self.on[family]:
            return False
        return self.single or patterns.may_match_lines(self.text.lines(family))

    def run(self) -> None:
        for text in self.prepared.texts:
            self.text = text
            self.images()
            self.digests()
            self.pools()
            self.processes()
            self.arguments()
            self.wallets()

    def emit(self, signal: str, strength: str, detail: str, value: str, key: str | None = None) -> None:
        if self.out.saturated(signal, strength):
            return
        container = self.text.container.name
        evidence = Evidence(signal=signal, strength=strength, container=container, detail=detail, value=value)
        self.out.add(evidence, value if key is None else key)

    def images(self) -> None:
        if not self.hit(self.signals.image_set, "images"):
            return
        image = self.text.container.image
        for indicator in self.signals.images:
            if any(indicator.pattern.matches(value) for value in self.text.images):
                self.emit("image", indicator.strength, _with_note(f"image {image}", indicator.note), image)

    def digests(self) -> None:
        if not self.signals.image_digests:
            return
        for digest, where in self.text.digests:
            for indicator in self.signals.image_digests:
                if indicator.digest == digest:
                    detail = _with_note(f"image digest {digest} in {where}", indicator.note)
                    self.emit("imageDigest", STRONG, detail, digest)

    def pools(self) -> None:
        signals = self.signals
        hosts = self.hit(signals.host_set, "hosts")
        if not (signals.pool_schemes or signals.pool_ports or hosts):
            return
        endpoints = self.text.endpoints
        host_hits = _may_match_each(signals.host_set, [e.host for e in endpoints]) if hosts else None
        changes, schemes = -1, False
        for endpoint in endpoints:
            host_hit = next(host_hits, False) if host_hits is not None else False
            if changes != self.out.changes:  # something was kept: is there still anything to look for?
                changes = self.out.changes
                schemes = bool(signals.pool_schemes) and not self.done("poolEndpoint")
                hosts = hosts and not self.done("poolHost")
                if not (schemes or hosts or (signals.pool_ports and not self.done("poolPort"))):
                    return
            self.endpoint(endpoint, schemes, hosts and host_hit)

    def endpoint(self, endpoint: _Endpoint, schemes: bool, host_hit: bool) -> None:
        signals = self.signals
        where, token, scheme, host = endpoint.where, endpoint.token, endpoint.scheme, endpoint.host
        if schemes and scheme in signals.pool_schemes:
            self.emit("poolEndpoint", STRONG, f"pool URL {token} in {where}", token)
        if host_hit and host:
            for indicator in signals.pool_hosts:
                if indicator.pattern.matches(host):
                    detail = _with_note(f"pool host {host} in {where}", indicator.note)
                    self.emit("poolHost", indicator.strength, detail, host)
        port = endpoint.port
        if port is None or scheme in _WEB_SCHEMES or _is_local(host):
            return
        for port_indicator in signals.pool_ports:
            if port_indicator.port == port:
                detail = _with_note(f"pool port {port} in {token} in {where}", port_indicator.note)
                self.emit("poolPort", port_indicator.strength, detail, str(port), key=f"{host}:{port}")

    def processes(self) -> None:
        patterns = self.signals.process_set
        if not self.hit(patterns, "programs"):
            return
        programs = self.text.programs
        for (where, name), hit in zip(programs, _may_match_each(patterns, [n for _, n in programs]), strict=True):
            if not hit:
                continue
            if self.done("process"):
                return
            for indicator in self.signals.processes:
                if indicator.pattern.matches(name):
                    detail = _with_note(f'process "{name}" in {where}', indicator.note)
                    self.emit("process", indicator.strength, detail, name)

    def arguments(self) -> None:
        signals = self.signals
        if self.hit(signals.argument_glob_set, "arguments"):
            globs = [i for i in signals.arguments if i.pattern.kind == "glob"]
            tokens = self.text.argument_tokens
            hits = _may_match_each(signals.argument_glob_set, [t for _, t in tokens])
            for (where, token), hit in zip(tokens, hits, strict=True):
                if hit:
                    if self.done("argument"):
                        return
                    self.argument_token(globs, where, token)
        if not self.hit(signals.argument_regex_set, "command_line"):
            return
        for indicator in signals.arguments:
            found = indicator.pattern.find(self.text.command_line) if indicator.pattern.kind == "regex" else None
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
        signals, text = self.signals, self.text
        monero = signals.monero and any(text.addresses)
        regexes = self.hit(signals.wallet_regex_set, "sources")
        globs = self.hit(signals.wallet_glob_set, "words")
        if not (monero or regexes or globs):
            return
        sources = text.sources
        regex_hits = _may_match_each(signals.wallet_regex_set, [value for _, value in sources]) if regexes else None
        changes = -1
        for index, (where, value) in enumerate(sources):
            if changes != self.out.changes:
                changes = self.out.changes
                if self.done("wallet"):
                    return
            for address in text.addresses[index] if monero else ():
                short = _short_wallet(address)
                self.emit("wallet", STRONG, f"Monero wallet {short} in {where}", short, key=address)
            regex_hit = next(regex_hits, False) if regex_hits is not None else False
            split = text.source_words[index] if globs else []
            candidates = [
                w for w, hit in zip(split, _may_match_each(signals.wallet_glob_set, split), strict=True) if hit
            ]
            for indicator in signals.wallet_patterns:
                if indicator.pattern.kind == "regex":
                    found = [indicator.pattern.find(value, prefer_group=True)] if regex_hit else []
                else:
                    found = [w for w in candidates if indicator.pattern.matches(w)]
                self.wallet_found(indicator, where, found)

    def wallet_found(self, indicator: Indicator, where: str, found: Sequence[str | None]) -> None:
        for wallet in found:
            if wallet:
                short = _short_wallet(wallet)
                detail = _with_note(f"wallet {short} in {where}", indicator.note)
                self.emit("wallet", indicator.strength, detail, short, wallet)


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


def _argument_tokens(container: ContainerView) -> Iterator[tuple[str, str]]:
    """(where, token): every command/args item, then the words inside it when it has several."""
    for where, item in _argv(container):
        yield where, item
        split = words(item)
        if len(split) > 1 or (split and split[0] != item):
            yield from ((where, word) for word in split)


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
_MONERO_RUNS = PatternSet((compile_regex("[48][1-9A-HJ-NP-Za-km-z]{94}"),))
"""Found wherever a Monero address is (and in more places: it is case-insensitive)."""


def _monero_addresses(text: str) -> list[str]:
    """Maximal base58 runs of 95 or 106 characters starting with 4 or 8."""
    runs = bounded(text).translate(_BASE58_TABLE).split()
    return [run for run in runs if len(run) in (95, 106) and run[0] in "48"]


def _short_wallet(wallet: str) -> str:
    return wallet if len(wallet) <= 20 else f"{wallet[:8]}{ELLIPSIS}{wallet[-6:]}"


def spec_findings(policy: Policy, workload: Workload) -> tuple[Evidence, ...]:
    """Every spec signal of the policy found in the workload, in a deterministic order."""
    out = _Collector()
    _Scan(policy, _prepare(workload), out).run()
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
        reason=shorten(f"node {printable(node)}: {reason}", 300),
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
