"""Miner options wherever they are written: argv spellings, and miner configs kept in data.

* :func:`option_pairs` reads ``--opt=value``, ``--opt value``, ``-o value`` and short
  options glued to their value (``-ostratum+tcp://host:port``, ``-uWALLET``) from a
  sequence of words.
* :func:`config_words` reads the ``"key": value`` pairs of a JSON (or JSON-with-comments)
  miner config (XMRig, xmr-stak, SRBMiner, the ``config.json`` of the images reported on
  Docker Hub) as the equivalent options, ``--key=value``, so that the same indicators find
  ``"donate-level": 1`` and ``--donate-level=1``, and ``"pools": [{"url": ..., "user":
  ...}]`` is read as ``--url=... --user=...``.
* :data:`USER_OPTIONS` and :data:`POOL_OPTIONS` name the options whose value is a miner's
  login (a wallet) or pool: what is passed there is *miner context* (a wallet there is
  Strong; a pool host there counts even without a port).

Bounded: at most :data:`MAX_CONFIG_CHARS` characters of a text are read for config pairs,
and at most :data:`MAX_PAIRS` pairs are kept per text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

__all__ = ["MAX_CONFIG_CHARS", "MAX_PAIRS", "POOL_OPTIONS", "USER_OPTIONS", "config_words", "option_pairs"]

MAX_CONFIG_CHARS = 256 * 1024
MAX_PAIRS = 2000

USER_OPTIONS = frozenset(
    {
        "-u",
        "-O",
        "--user",
        "--username",
        "--login",
        "--userpass",
        "--wallet",
        "--wallet-address",
        "--mining-address",
        "--start-mining",
    }
)
"""Options (and config keys, as --key) whose value is the miner's login: a wallet, often with a worker suffix."""

POOL_OPTIONS = frozenset({"-o", "-P", "--url", "--pool", "--server", "--pool-url", "--stratum"})
"""Options (and config keys) whose value is a pool: URL, host:port, or a bare host."""

_LONG = re.compile(r"--[A-Za-z0-9][A-Za-z0-9_.-]*")


def option_pairs(words: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(option, value) for every option with a value in the words; long option names lowercased."""
    n = len(words)
    for i, word in enumerate(words):
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if eq:
                yield name.lower(), value
            elif i + 1 < n and not words[i + 1].startswith("-"):
                yield name.lower(), words[i + 1]
        elif len(word) >= 2 and word[0] == "-" and word[1].isalpha():
            if len(word) == 2:
                if i + 1 < n and not words[i + 1].startswith("-"):
                    yield word, words[i + 1]
            else:
                value = word[2:]
                yield word[:2], value[1:] if value.startswith("=") else value


_PAIR = re.compile(
    r'"([A-Za-z0-9_.-]{1,64})"\s*:\s*(?:"((?:[^"\\\n]|\\.){0,2048})"|(-?[0-9][0-9.eE+-]{0,30}|true|false))'
)


def config_words(text: str) -> list[str]:
    """The ``"key": value`` pairs of a JSON-like text as ``--key=value`` words (strings
    unescaped, numbers and booleans as written); [] for a text that is not one."""
    if '"' not in text or "{" not in text:
        return []
    text = text[:MAX_CONFIG_CHARS]
    found: list[str] = []
    for match in _PAIR.finditer(text):
        key, string, literal = match.group(1), match.group(2), match.group(3)
        value = _unescape_json(string) if string is not None else literal
        found.append(f"--{key.lower()}={value}")
        if len(found) >= MAX_PAIRS:
            break
    return found


def _unescape_json(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "/": "/"}.get(m.group(1), m.group(1)), text)
