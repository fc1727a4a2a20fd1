"""The spec findings of one policy in one workload (rule 2 of :mod:`minerguard.domain.detection`).

The policy-independent work on a workload (tokens, programs, endpoints, addresses) is done
once by :func:`prepare` and shared by every policy evaluated on it.
"""

# size: the per-container text views and the per-policy scan share private types (_Text, _Endpoint,
# _Collector); the option/context part of _Text is the first candidate to move out.

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote

from minerguard.domain.detection.evidence import Evidence
from minerguard.domain.detection.image import pod_image_views, without_image
from minerguard.domain.detection.options import POOL_OPTIONS, USER_OPTIONS, config_words, option_pairs
from minerguard.domain.detection.shell import Expansion, argv_of, expand, expand_k8s_vars
from minerguard.domain.detection.tokens import (
    MAX_TOKENS,
    MONERO_RUNS,
    WEB_SCHEMES,
    digests_in,
    is_local,
    monero_addresses,
    parse_endpoint,
    pool_tokens,
    short_wallet,
    with_words,
    words,
)
from minerguard.domain.kinds import STRONG, WEAK
from minerguard.domain.patterns import PatternSet
from minerguard.domain.policy import Indicator, Policy, Signals
from minerguard.domain.text import shorten
from minerguard.domain.workload import ContainerView, Workload

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


@dataclass(frozen=True)
class Options:
    """What a policy lets detection read beyond the pod spec (see Signals.config_maps, decode_payloads)."""

    config_maps: bool = False
    decode: bool = True
    image: bool = False

    @classmethod
    def of(cls, signals: Signals) -> Options:
        return cls(signals.config_maps, signals.decode_payloads, signals.image_config)


MAX_SOURCES = 20000
"""Texts (values, decoded payloads, script commands, config lines) read per container."""


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
    """A URL or host:port token of a container: where it is, its scheme, host and port, and
    whether it is the value of a miner's pool option (then a bare host counts too)."""

    where: str
    token: str
    scheme: str
    host: str
    port: int | None
    pool_option: bool = False


_GLUED_OPTIONS = frozenset("oPuO")
"""Short options of miners whose value may be glued to them: pool (-o, -P) and login (-u, -O)."""


def _glued(token: str) -> str | None:
    """The value of a pool or login short option glued to it (``-ostratum+tcp://x`` -> ``stratum+tcp://x``)."""
    if len(token) > 2 and token[0] == "-" and token[1] in _GLUED_OPTIONS:
        return token[2:]
    return None


def _unquoted(token: str) -> str | None:
    """A percent-encoded token decoded (``stratum%2Btcp%3A%2F%2F...``), when it has escapes."""
    if "%" not in token or len(token) > 4096:
        return None
    decoded = unquote(token)
    return decoded if decoded != token else None


class _Text:
    """The work on one container that does not depend on the policy (tokens, programs,
    endpoints, addresses), each done on first use and then shared by every policy with the
    same :class:`Options`."""

    def __init__(self, container: ContainerView, options: Options) -> None:
        self.container = container
        self.options = options
        self._lines: dict[str, str] = {}

    @cached_property
    def env(self) -> list[tuple[str, str]]:
        """(name, value) of the container's environment: literal, then from ConfigMaps when read."""
        env = list(self.container.env)
        return env + list(self.container.config_env) if self.options.config_maps else env

    @cached_property
    def expanded_argv(self) -> tuple[list[tuple[str, str]], bool]:
        return expand_k8s_vars(argv_of(self.container), dict(self.env))

    @cached_property
    def argv(self) -> list[tuple[str, str]]:
        """(where, item) of command and args, with Kubernetes ``$(VAR)`` references expanded from the env."""
        return self.expanded_argv[0]

    @cached_property
    def expansion(self) -> Expansion:
        files = dict(self.container.files) if self.options.config_maps else {}
        env = dict(self.container.image_env) | dict(self.env)  # the image's env beneath the pod's
        return expand(self.argv, env, files, decode=self.options.decode)

    @cached_property
    def sources(self) -> list[tuple[str, str]]:
        """(where, text) of everything read for pools and wallets: argv items, env values,
        decoded payloads and here-documents, the commands scripts run (variables substituted),
        and miner configs read as options."""
        env = [(f"env {name}" if name else "env", value) for name, value in self.env]
        env += [(f"image config Env {name}", value) for name, value in self.container.image_env]
        found = self.argv + env + list(self.container.image_texts)
        glued = ((c.where, _glued(w)) for c in self.expansion.commands for w in c.words if not w.startswith("--"))
        found += [(where, value) for where, value in glued if value and len(value) > 8]
        found += self.expansion.texts
        found += [(c.where, " ".join(c.words)) for c in self.expansion.commands if c.derived]
        files = [(f"file {path}", text) for path, text in self.container.files] if self.options.config_maps else []
        for where, text in found + files:
            options = config_words(text)
            if options:
                found.append((f"miner config in {where}", " ".join(options)))
        return found[:MAX_SOURCES]

    @cached_property
    def command_words(self) -> list[tuple[str, list[str]]]:
        """(where, words) of the commands whose words are not all in argv as written (see
        :attr:`Command.derived`), and of each miner config read as options."""
        found = [(c.where, list(c.words)) for c in self.expansion.commands if c.derived]
        found += [(where, text.split(" ")) for where, text in self.sources if where.startswith("miner config in ")]
        return found

    def sequences(self, marks: tuple[str, ...]) -> Iterator[tuple[str, list[str]]]:
        """(where, words) of every command read, of each miner config, and of each other text
        that holds one of the option marks (only those can hold such an option)."""
        for command in self.expansion.commands[:MAX_SOURCES]:
            yield command.where, list(command.words)
        for where, text in self.sources:
            if where.startswith("miner config in "):
                yield where, text.split(" ")
            elif any(mark in text for mark in marks):
                yield where, words(text)

    @cached_property
    def users(self) -> list[str]:
        """Values passed as a miner's login: user/login/wallet options, stratum URL users, miner config users."""
        found = [
            value for _, seq in self.sequences(_USER_MARKS) for opt, value in option_pairs(seq) if opt in USER_OPTIONS
        ]
        for endpoint in self.endpoints:
            if endpoint.scheme.startswith("stratum") and "@" in endpoint.token:
                found.append(endpoint.token.partition("://")[2].rpartition("@")[0])
        return found

    @cached_property
    def pool_options(self) -> list[tuple[str, str]]:
        """(where, value) passed as a miner's pool (-o, --url, --pool, --server, a miner config's url)."""
        return [
            (w, value)
            for w, seq in self.sequences(_POOL_MARKS)
            for opt, value in option_pairs(seq)
            if opt in POOL_OPTIONS
        ]

    def in_miner_context(self, wallet: str) -> bool:
        """Whether a wallet is passed to a miner (a login option, a stratum URL's user, a miner config's user)."""
        return any(wallet in value for value in self.users)

    @cached_property
    def images(self) -> list[str]:
        """The image reference and its part after the last ``/``."""
        image = self.container.image
        tail = image.rsplit("/", 1)[-1]
        return [] if not image else [image] if tail == image else [image, tail]

    @cached_property
    def digests(self) -> list[tuple[str, str]]:
        found = [(d, "image") for d in digests_in(self.container.image.partition("@")[2])]
        return found + [(d, "imageID") for d in digests_in(self.container.image_id)]

    @cached_property
    def endpoints(self) -> list[_Endpoint]:
        sources = ((where, text) for where, text in self.sources if ":" in text)
        tokens: list[tuple[str, str]] = []
        for where, text in sources:
            for token in pool_tokens(text):
                if ":" not in token:
                    continue
                tokens.append((where, token))
                tokens += [(where, t) for t in (_glued(token), _unquoted(token)) if t]
        found = []
        for where, token in _distinct(tokens):
            parsed = parse_endpoint(token)
            if parsed is not None:
                found.append(_Endpoint(where, token, *parsed))
        return found

    @cached_property
    def pool_values(self) -> list[_Endpoint]:
        """The values of miner pool options (URL, host:port or a bare host)."""
        found = []
        for where, value in _distinct(self.pool_options):
            token = _unquoted(value) or value
            parsed = parse_endpoint(token) or (("", token.lower().rstrip("."), None) if _is_host(token) else None)
            if parsed is not None:
                found.append(_Endpoint(where, token, *parsed, pool_option=True))
        return found

    @cached_property
    def all_endpoints(self) -> list[_Endpoint]:
        return self.endpoints + self.pool_values

    @cached_property
    def programs(self) -> list[tuple[str, str]]:
        return _distinct(self.expansion.programs)

    @cached_property
    def argument_tokens(self) -> list[tuple[str, str]]:
        def tokens() -> Iterator[tuple[str, str]]:
            for where, item in self.argv:
                yield where, item
                split = words(item)
                if len(split) > 1 or (split and split[0] != item):
                    yield from ((where, word) for word in split)
            for where, sequence in self.command_words:
                yield from ((where, word) for word in sequence)

        return _distinct(tokens())

    @cached_property
    def argument_text(self) -> str:
        """The argv items and the commands read, one per line: every argument token is a line or a word of one."""
        return "\n".join([item for _, item in self.argv] + [" ".join(sequence) for _, sequence in self.command_words])

    @cached_property
    def command_line(self) -> str:
        """The command line, then every command read (scripts, configs), one per line."""
        first = " ".join(item for _, item in self.argv)
        return "\n".join([first] + [" ".join(sequence) for _, sequence in self.command_words])

    @cached_property
    def addresses(self) -> list[list[str]]:
        """The Monero addresses in each source."""
        if not MONERO_RUNS.may_match_lines(self.lines("sources")):
            return [[] for _ in self.sources]
        return [monero_addresses(text) if len(text) >= 95 else [] for _, text in self.sources]

    @cached_property
    def source_words(self) -> list[list[str]]:
        return [words(text)[:MAX_TOKENS] for _, text in self.sources]

    @cached_property
    def oversized(self) -> str:
        """Where something was over the bounds (cut, or not read to the end), or ''."""
        if self.container.oversized:
            return self.container.oversized[0]
        if self.expanded_argv[1]:
            return "Kubernetes $(VAR) expansion of command and args over the bound"
        return "scripts too large or too deep to read to the end" if self.expansion.truncated else ""

    def lines(self, family: str) -> str:
        """The values of a family joined by newlines, for :meth:`PatternSet.may_match_lines`."""
        joined = self._lines.get(family)
        if joined is None:
            joined = self._lines[family] = "\n".join(_FAMILIES[family](self))
        return joined


_USER_MARKS = ("-u", "-O", "--user", "--login", "--wallet", "--mining-address", "--start-mining")
_POOL_MARKS = ("-o", "-P", "--url", "--pool", "--server", "--stratum")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def _is_host(value: str) -> bool:
    """A bare DNS name with a dot (``etc.2miners.com``), as given to a pool option."""
    lowered = value.lower().rstrip(".")
    return "." in lowered and 3 < len(lowered) < 254 and set(lowered) <= _HOST_CHARS and lowered[0].isalnum()


_FAMILIES: dict[str, Callable[[_Text], Iterable[str]]] = {
    "images": lambda t: t.images,
    "hosts": lambda t: (e.host for e in t.all_endpoints if e.host),
    "programs": lambda t: (name for _, name in t.programs),
    "arguments": lambda t: with_words(t.argument_text),
    "command_line": lambda t: (t.command_line,),
    "sources": lambda t: (text for _, text in t.sources),
    "words": lambda t: with_words(t.lines("sources"))[1:],
}
"""Per family, the values that a pattern set is pre-checked on. The word families give
the values themselves and then their words, one per line (see :func:`with_words`)."""


class Prepared:
    """The policy-independent work on a workload: per :class:`Options`, one :class:`_Text` per container."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self._views: dict[Options, _View] = {}

    def view(self, options: Options) -> _View:
        found = self._views.get(options)
        if found is None:
            found = self._views[options] = _View(self.workload, options)
        return found


MAX_CACHED_HISTORY = 16 << 20
"""Bytes (estimated: :func:`_history_cost`) of image history readings (scripts, tokens) kept from one pod to
the next: about 300 ordinary images' histories, or 10 hostile ones of 256 steps."""


def _history_cost(steps: Sequence[ContainerView]) -> int:
    """The memory a history's reading holds, as measured (tracemalloc): about 5 KB a step and 10 bytes a character."""
    chars = sum(len(" ".join(v.command)) + sum(len(t) for _, t in v.image_texts) for v in steps)
    return 10 * chars + 5000 * len(steps)


_History = tuple[object, ...]
_history_read: OrderedDict[_History, tuple[int, tuple[_Text, ...]]] = OrderedDict()


def _history_texts(container: ContainerView, steps: Sequence[ContainerView], options: Options) -> list[_Text]:
    """The texts of an image's history steps, read once per image content (``config_digest``), container
    name and options, then shared by every pod that runs it (the reading does not depend on the pod)."""
    digest = container.image_config.config_digest if container.image_config is not None else ""
    if not digest or not steps:
        return [_Text(view, options) for view in steps]
    key: _History = (digest, container.kind, container.name, options, *(v.command_from for v in steps))
    found = _history_read.get(key)
    if found is None:
        found = (_history_cost(steps), tuple(_Text(view, options) for view in steps))
        _history_read[key] = found
        try:  # no lock in the domain: concurrent evaluations may race here, and at worst read again
            while sum(size for size, _ in _history_read.values()) > MAX_CACHED_HISTORY and len(_history_read) > 1:
                _history_read.popitem(last=False)
        except (KeyError, RuntimeError):
            pass
    else:
        try:
            _history_read.move_to_end(key)
        except KeyError:
            pass
    return list(found[1])


class _View:
    """The texts of every container of a workload, read with some :class:`Options`."""

    def __init__(self, workload: Workload, options: Options) -> None:
        self.workload = workload
        self._lines: dict[str, str] = {}
        self.texts: list[_Text] = []
        if not options.image:
            self.texts = [_Text(without_image(c), options) for c in workload.containers]
            return
        for container, views in zip(workload.containers, pod_image_views(workload.containers), strict=True):
            self.texts.append(_Text(views[0], options))
            self.texts += _history_texts(container, views[1:], options)

    def lines(self, family: str) -> str:
        """The values of a family in every container, joined by newlines."""
        joined = self._lines.get(family)
        if joined is None:
            joined = self._lines[family] = "\n".join(text.lines(family) for text in self.texts)
        return joined


def prepare(workload: Workload) -> Prepared:
    """The policy-independent work on a workload; pass it to every policy evaluated on it."""
    return Prepared(workload)


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

    def __init__(self, policy: Policy, prepared: Prepared, out: _Collector) -> None:
        self.signals = signals = policy.signals
        self.policy = policy
        self.prepared = prepared.view(Options.of(signals))
        self.out = out
        self.single = len(self.prepared.texts) == 1
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
            self.bounds()

    def bounds(self) -> None:
        """The Weak signals of text over the bounds, and of payloads fed to a shell undecoded."""
        if not self.policy.reads_text:
            return
        if self.text.oversized:
            detail = f"{self.text.oversized}: read at its head and tail only"
            self.emit("oversizedValue", WEAK, detail, "oversized", key="oversized")
        undecodable = self.text.expansion.undecodable
        if undecodable and self.signals.decode_payloads:
            detail = (
                f"encoded payload that cannot be decoded (or is over the bounds) fed to a shell in {undecodable[0]}"
            )
            self.emit("encodedPayload", WEAK, detail, "encoded payload", key="encoded")

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
        endpoints = self.text.all_endpoints
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
        if host_hit and host and (scheme not in WEB_SCHEMES or endpoint.pool_option):
            for indicator in signals.pool_hosts:
                if indicator.pattern.matches(host):
                    detail = _with_note(f"pool host {host} in {where}", indicator.note)
                    self.emit("poolHost", indicator.strength, detail, host)
        port = endpoint.port
        if port is None or scheme in WEB_SCHEMES or is_local(host):
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
                short = short_wallet(address)
                strength = STRONG if text.in_miner_context(address) else WEAK
                self.emit(
                    "wallet", strength, f"Monero wallet {short} in {where}{_context(strength)}", short, key=address
                )
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
                short = short_wallet(wallet)
                strength = indicator.strength if self.text.in_miner_context(wallet) else WEAK
                detail = _with_note(f"wallet {short} in {where}{_context(strength)}", indicator.note)
                self.emit("wallet", strength, detail, short, wallet)


def _context(strength: str) -> str:
    return " (passed to a miner)" if strength == STRONG else " (not passed to a miner: Weak)"


def spec_findings(policy: Policy, workload: Workload, prepared: Prepared | None = None) -> tuple[Evidence, ...]:
    """Every spec signal of the policy found in the workload, in a deterministic order."""
    out = _Collector()
    _Scan(policy, prepared if prepared is not None and prepared.workload is workload else prepare(workload), out).run()
    return out.result()
