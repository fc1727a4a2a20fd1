"""Cutting container text into the tokens detection reads: words, endpoints, digests and wallets.

Pure functions, bounded by :func:`~minerguard.domain.patterns.bounded` and :data:`MAX_TOKENS`.
"""

from __future__ import annotations

from minerguard.domain.patterns import PatternSet, bounded, compile_regex
from minerguard.domain.text import ELLIPSIS

MAX_TOKENS = 20000
"""Distinct tokens examined per container and signal family; the rest are ignored."""

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


def pool_tokens(text: str) -> list[str]:
    return bounded(text).translate(_POOL_TABLE).split()


def base_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def with_words(lines: str) -> tuple[str, str]:
    """Values joined by newlines, and the same with every word on its own line: together,
    a line for every value and for every word that :func:`words` finds in one (the values
    are already cut to 64 KiB by the workload view)."""
    return lines, lines.translate(_LINE_TABLE)


_HEX = frozenset("0123456789abcdef")


def digests_in(text: str) -> list[str]:
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


WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
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


def parse_endpoint(token: str) -> tuple[str, str, int | None] | None:
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


def is_local(host: str) -> bool:
    return host in ("", "localhost", "0.0.0.0", "::", "::1") or host.startswith("127.")  # noqa: S104


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
MONERO_RUNS = PatternSet((compile_regex("[48][1-9A-HJ-NP-Za-km-z]{94}"),))
"""Found wherever a Monero address is (and in more places: it is case-insensitive)."""


def monero_addresses(text: str) -> list[str]:
    """Maximal base58 runs of 95 or 106 characters starting with 4 or 8."""
    runs = bounded(text).translate(_BASE58_TABLE).split()
    return [run for run in runs if len(run) in (95, 106) and run[0] in "48"]


def short_wallet(wallet: str) -> str:
    return wallet if len(wallet) <= 20 else f"{wallet[:8]}{ELLIPSIS}{wallet[-6:]}"
