"""What a container runs, read the way a shell reads it: wrappers, scripts, substitutions, payloads.

:func:`expand` takes a container's argv and its environment and returns every *simple
command* it would run, at any depth, with the program each one really starts, and the
texts it builds on the way (decoded payloads, here-documents). It is a static reading,
not an interpreter: nothing is executed, every loop is bounded, and what cannot be known
(the output of ``$(nproc)``) is the empty string.

Read:

* **Wrappers**, any number in a row, with their own options and operands: ``nohup``,
  ``nice -n N``, ``timeout [-s SIG] DURATION``, ``env [-i] [-u NAME] [A=B]...``,
  ``setsid``, ``exec [-a NAME]``, ``sudo [-u USER] [--]``, ``doas``, ``chroot DIR``,
  ``taskset [-c] LIST``, ``ionice -c N``, ``stdbuf -oL``, ``busybox``, ``xargs [-n N]``,
  ``time``, ``command``, ``nsenter``, ``unshare``, ``flock LOCK``, ``watch``, ``runuser``.
* **Shells** at any word position of argv (``env -i timeout 0 busybox sh -c SCRIPT``):
  ``-c`` (also combined, ``-lc``, ``-ec``), ``su -c``, ``eval``, a script file whose text
  is known (a ConfigMap file), ``sh -s``/``bash`` reading a here-document.
* **Scripts**: words with ``'...'``, ``"..."``, ``$'...'`` (ANSI-C escapes) and
  backslashes; ``;``, ``&&``, ``||``, ``|``, ``&``, newlines, ``( )``, ``{ }``; comments;
  redirections; ``if``/``while``/``for``/``case`` keywords; ``NAME=value`` and ``export``
  assignments; ``$NAME``, ``${NAME}``, ``${NAME:-default}`` from the container's
  environment and the script's own assignments; ``$(...)`` and backquotes, parsed as
  scripts in their own right; here-documents (``<<EOF``, ``<<-'EOF'``) and here-strings
  (``<<<``). An unterminated quote (a value cut by the length bound) is read as a script.
* **Payloads**: the static output of ``echo``/``printf`` (with escapes) and ``cat`` of a
  here-document, passed through ``base64 -d``/``--decode``, ``basenc``, ``openssl base64
  -d``, ``xxd -r -p``, ``gunzip``/``zcat``/``gzip -d`` and ``rev``, in any pipeline or
  ``$(...)``. A decoded text is parsed as a script and kept as a text of its own (for pools,
  wallets and configs). A payload that cannot be decoded, or is over the bounds, fed into
  a shell or ``eval`` is reported (:attr:`Expansion.undecodable`).

Bounds: nesting depth :data:`MAX_DEPTH`; :data:`MAX_COMMANDS` simple commands and
:data:`MAX_SCRIPT_CHARS` characters of script read per container; a payload is decoded
only up to :data:`MAX_PAYLOAD` characters in and :data:`MAX_DECODED` characters out, and
:data:`MAX_DECODED_TOTAL` per container; a variable's value is substituted up to
:data:`MAX_VAR_VALUE` characters, and :data:`MAX_VARS` assignments are kept.
"""

# size: one static reader of shell scripts (reader, parser, payload decoders) sharing one budget;
# the payload decoders are the first candidate to move out.

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from minerguard.domain.workload import ContainerView

__all__ = [
    "MAX_COMMANDS",
    "MAX_DECODED",
    "MAX_DECODED_TOTAL",
    "MAX_DEPTH",
    "MAX_PAYLOAD",
    "MAX_SCRIPT_CHARS",
    "MAX_SUBSTITUTED",
    "SHELLS",
    "Command",
    "Expansion",
    "argv_of",
    "base_name",
    "expand",
    "expand_k8s_vars",
    "shell_programs",
]

MAX_DEPTH = 6
"""Nesting of shells, eval, command substitutions and decoded payloads read."""
MAX_COMMANDS = 4000
"""Simple commands read per container."""
MAX_SCRIPT_CHARS = 1 << 20
"""Characters of script text read per container, all depths together."""
MAX_PAYLOAD = 48 * 1024
"""Longest encoded payload that is decoded."""
MAX_DECODED = 64 * 1024
"""Longest decoded payload kept."""
MAX_DECODED_TOTAL = 256 * 1024
"""Decoded characters kept per container."""
MAX_VAR_VALUE = 64 * 1024
"""Characters of a variable's value substituted."""
MAX_VARS = 512
"""Variables assigned by scripts that are remembered per container."""
MAX_SUBSTITUTED = 1 << 20
"""Characters of variable values substituted per container."""
MAX_PROBES = 2000
"""Command substitutions whose static output is worked out per container."""

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "yash", "posh", "rbash"})

# Wrappers: for each, the options that take a value, and how many operands come before
# the program (timeout DURATION, chroot DIR, taskset LIST, flock FILE).
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "nohup": (frozenset(), 0),
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "timeout": (frozenset({"-s", "--signal", "-k", "--kill-after"}), 1),
    "env": (frozenset({"-u", "--unset", "-C", "--chdir"}), 0),
    "setsid": (frozenset(), 0),
    "exec": (frozenset({"-a"}), 0),
    "sudo": (frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "--user", "--group"}), 0),
    "doas": (frozenset({"-u", "-C"}), 0),
    "chroot": (frozenset({"--userspec", "--groups"}), 1),
    "taskset": (frozenset(), 1),
    "ionice": (frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e"}), 0),
    "busybox": (frozenset(), 0),
    "xargs": (frozenset({"-n", "-L", "-I", "-P", "-s", "-d", "-E", "-a", "--max-args", "--max-procs"}), 0),
    "time": (frozenset({"-f", "-o"}), 0),
    "command": (frozenset(), 0),
    "builtin": (frozenset(), 0),
    "nsenter": (frozenset({"-t", "--target", "-S", "-G", "--wd", "-w"}), 0),
    "unshare": (frozenset(), 0),
    "flock": (frozenset({"-w", "-E", "--timeout"}), 1),
    "watch": (frozenset({"-n", "-d", "--interval"}), 0),
    "runuser": (frozenset({"-u", "-g", "-G", "--user"}), 0),
    "chrt": (frozenset(), 1),
    "cpulimit": (frozenset({"-l", "-p", "-e", "--limit"}), 0),
    "caffeinate": (frozenset(), 0),
    "tini": (frozenset({"-p", "-e"}), 0),
    "dumb-init": (frozenset(), 0),
    "catatonit": (frozenset(), 0),
    "gosu": (frozenset(), 1),
    "su-exec": (frozenset(), 1),
    "setpriv": (frozenset({"--reuid", "--regid", "--groups"}), 0),
    "strace": (frozenset({"-o", "-e", "-p", "-s"}), 0),
    "ltrace": (frozenset({"-o", "-e", "-p", "-s"}), 0),
    "proxychains": (frozenset({"-f"}), 0),
    "proxychains4": (frozenset({"-f"}), 0),
    "torsocks": (frozenset(), 0),
}
_INTERPRETERS = frozenset({"python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "pwsh"})
_STRING_LITERAL = re.compile(r"""(['"])((?:(?!\1)[^\\\n]|\\.){1,4096})\1""")
_PLAIN = re.compile(r"[^ \t\r\v\f;&|()\n<>'\"`$\\]+")
"""A run of characters that are themselves in a word (no space, separator, quote or substitution)."""
_PLAIN_QUOTED = re.compile(r'[^"\\$`]+')
"""A run of characters that are themselves inside double quotes."""
_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "while", "until", "do", "done", "!", "{", "}", "[[", "]]"})
_SKIP_COMMANDS = frozenset({"for", "case", "esac", "in", "function", "select"})
_ASSIGNERS = frozenset({"export", "local", "readonly", "declare", "typeset"})
_SEPARATORS = frozenset(";&|()\n")
_SPACE = frozenset(" \t\r\v\f")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\n\r \t")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF\n\r \t")
_DECODERS = frozenset({"base64", "basenc", "openssl", "xxd", "gunzip", "zcat", "gzip", "rev", "b64decode"})


def base_name(word: str) -> str:
    """The program name of a path (``/usr/bin/xmrig`` -> ``xmrig``)."""
    return word.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Command:
    """One simple command: where it was found, its words (after substitution), and the
    index of the word that is the program actually run (-1 when none is)."""

    where: str
    words: tuple[str, ...]
    program: int = -1
    derived: bool = False
    """Whether the words are not all written as such in the container's argv: a variable or
    command substitution was made, or the script came from a decoded payload, a
    here-document or a file."""

    @property
    def name(self) -> str:
        """Base name of the program run, or ''."""
        return base_name(self.words[self.program]) if self.program >= 0 else ""


@dataclass
class Expansion:
    """Everything :func:`expand` found in one container."""

    commands: list[Command] = field(default_factory=list)
    programs: list[tuple[str, str]] = field(default_factory=list)
    """(where, base name) of every program started, wrappers included, in order."""
    texts: list[tuple[str, str]] = field(default_factory=list)
    """(where, text) of decoded payloads and here-documents."""
    undecodable: list[str] = field(default_factory=list)
    """Where an undecodable or oversized payload is fed into a shell."""
    truncated: bool = False
    """Whether a bound stopped the reading before the end."""


@dataclass
class _Word:
    text: str
    quoted: bool = False


@dataclass
class _Simple:
    words: list[str] = field(default_factory=list)
    stdin: list[str] = field(default_factory=list)  # here-documents and here-strings
    heredocs: list[str] = field(default_factory=list)  # here-document bodies
    subs: list[str] = field(default_factory=list)  # bodies of $(...) and backquotes
    failed: bool = False  # a $(...) decoded nothing: an undecodable payload
    substituted: bool = False  # a variable or command substitution gave text


@dataclass
class _Budget:
    """What one container's reading has spent, shared with the probes of command substitutions."""

    script_chars: int = 0
    decoded_chars: int = 0
    probes: int = 0
    substituted: int = 0


class _Reader:
    """The state of one :func:`expand` run: bounds, variables, results."""

    def __init__(
        self, env: dict[str, str], files: Mapping[str, str], share: _Reader | None = None, decode: bool = True
    ) -> None:
        self.env = env
        self.decode: bool = share.decode if share is not None else decode
        self.budget: _Budget = share.budget if share is not None else _Budget()
        self.nesting: int = share.nesting + 1 if share is not None else 0
        self.assigned = 0
        self.files = files
        self.out = Expansion()

    # ----------------------------------------------------------------- bounds

    def room(self) -> bool:
        if len(self.out.commands) >= MAX_COMMANDS or self.budget.script_chars > MAX_SCRIPT_CHARS:
            self.out.truncated = True
            return False
        return True

    def assign(self, name: str, value: str) -> None:
        if name in self.env or self.assigned < MAX_VARS:
            if name not in self.env:
                self.assigned += 1
            self.env[name] = value[:MAX_VAR_VALUE]

    # ----------------------------------------------------------------- commands

    def command(
        self, words: Sequence[str], where: str, depth: int, wheres: Sequence[str] = (), derived: bool = False
    ) -> None:
        """Read one simple command (argv or a command of a script)."""
        if not words or depth > MAX_DEPTH or not self.room():
            if depth > MAX_DEPTH:
                self.out.truncated = True
            return
        index = self.program_index(words, where)
        self.out.commands.append(Command(where, tuple(words), index, derived))
        if index < 0:
            return
        if any(w in ("-S", "--split-string") for w in words[:index]):  # env -S 'program args': a split string
            self.script(" ".join(words[index:]), where, depth + 1, True)
            return
        name = base_name(words[index]).lower()
        rest = list(words[index + 1 :])
        script_where = f"shell script in {wheres[-1] if wheres else where}" if depth == 0 else where
        if name in SHELLS or (name == "su" and "-c" in rest):
            script = _shell_c_script(rest)
            if script is not None:
                if wheres:
                    position = len(words) - len(rest) + rest.index(script)
                    script_where = f"shell script in {wheres[position]}"
                self.script(script, script_where, depth + 1, derived)
            else:
                file = next((w for w in rest if not w.startswith("-")), None)
                if file is not None:
                    self.out.programs.append((where, base_name(file)))
                    text = self.files.get(file)
                    if text is not None:
                        self.script(text, f"script {file}", depth + 1, True)
        elif name == "eval":
            self.script(" ".join(rest), script_where, depth + 1, derived)
        elif name.rstrip("0123456789.") in _INTERPRETERS:
            self.interpreted(rest, f"{name} code in {where}", depth)

    def interpreted(self, rest: Sequence[str], where: str, depth: int) -> None:
        """The code of ``python -c``, ``perl -e``, ``node -e``...: kept as a text, and each of its
        string literals that looks like a command (``os.system('xmrig ...')``) read as a script."""
        code = next((rest[i + 1] for i, w in enumerate(rest[:-1]) if w in ("-c", "-e", "-E", "-r")), None)
        if code is None:
            return
        self.out.texts.append((where, code))
        for match in _STRING_LITERAL.finditer(code[:MAX_PAYLOAD]):
            literal = match.group(2)
            if " " in literal.strip():
                self.script(_unescape(literal), where, depth + 1, True)

    def program_index(self, words: Sequence[str], where: str) -> int:
        """Index of the program actually run, after assignments and wrappers; records every program seen."""
        i, n = 0, len(words)
        while i < n:
            word = words[i]
            if _is_assignment(word):
                i += 1
                continue
            name = base_name(word)
            if not name:
                return -1
            self.out.programs.append((where, name))
            wrapper = _WRAPPERS.get(name.lower())
            if wrapper is None:
                return i
            i = _skip_wrapper(words, i + 1, *wrapper, env=name.lower() == "env")
        return -1

    # ----------------------------------------------------------------- scripts

    def script(self, text: str, where: str, depth: int, derived: bool = False) -> None:
        """Read a shell script: every command of every pipeline, and what they decode."""
        if depth > MAX_DEPTH:
            self.out.truncated = True
            return
        self.budget.script_chars += len(text)
        if not self.room():
            return
        for pipeline in _Parser(text, self).pipelines():
            self.pipeline(pipeline, where, depth, derived)

    def pipeline(self, pipeline: list[_Simple], where: str, depth: int, derived: bool = False) -> None:
        output: str | None = None
        decoding = False  # a decoder ran earlier in this pipeline
        failed = False  # ... and its result is unknown or undecodable
        for position, simple in enumerate(pipeline):
            for body in simple.subs:
                self.script(body, where, depth + 1, derived)
            for body in simple.heredocs:
                self.out.texts.append((f"here-document in {where}", body))
                self.script(body, f"here-document in {where}", depth + 1, True)
            words, stdin = self.assignments(list(simple.words), simple.stdin)
            if not words:
                continue
            self.command(words, where, depth, derived=derived or simple.substituted)
            name = base_name(words[0]).lower()
            if simple.failed and (name == "eval" or (name in SHELLS and _shell_c_script(words[1:]) is not None)):
                self.out.undecodable.append(where)
            feed = output if position > 0 else (stdin[0] if stdin else None)
            result = _static_output(words, feed, self)
            is_decoder = name in _DECODERS and self.decode
            if is_decoder:
                decoding = True
                failed = failed or not isinstance(result, str)
                if isinstance(result, str) and result:
                    self.decoded(result, f"decoded payload in {where}", depth)
            output = result if isinstance(result, str) else None
            if name in SHELLS and position > 0 and _shell_c_script(words[1:]) is None:
                if decoding and failed:
                    self.out.undecodable.append(where)
                elif feed is not None and not decoding:
                    self.script(feed, f"payload in {where}", depth + 1, True)

    def assignments(self, words: list[str], stdin: list[str]) -> tuple[list[str], list[str]]:
        """Records NAME=value words (alone, or after export/local/...), and returns the words
        of the command that remains (assignment prefixes of a command are kept in its words)."""
        if words and words[0] in _ASSIGNERS:
            for word in words[1:]:
                if _is_assignment(word):
                    name, _, value = word.partition("=")
                    self.assign(name, value)
            return [], stdin
        if words and all(_is_assignment(w) for w in words):
            for word in words:
                name, _, value = word.partition("=")
                self.assign(name, value)
            return [], stdin
        return words, stdin

    def decoded(self, text: str, where: str, depth: int) -> None:
        if self.budget.decoded_chars >= MAX_DECODED_TOTAL:
            self.out.truncated = True
            return
        text = text[: MAX_DECODED_TOTAL - self.budget.decoded_chars]
        self.budget.decoded_chars += len(text)
        self.out.texts.append((where, text))
        self.script(text, where, depth + 1, True)

    def substitute(self, name: str, default: str | None) -> str:
        value = self.env.get(name)
        if value is None or value == "":
            value = default or ""
        value = value[: max(0, min(MAX_VAR_VALUE, MAX_SUBSTITUTED - self.budget.substituted))]
        if len(value) < len(self.env.get(name) or default or ""):
            self.out.truncated = True
        self.budget.substituted += len(value)
        return value


def _is_assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and bool(name) and name[0] in _NAME_START and all(c in _NAME_CHARS for c in name)


def _skip_wrapper(words: Sequence[str], i: int, valued: frozenset[str], operands: int, env: bool = False) -> int:
    """Index of the first word after a wrapper's options and operands."""
    n = len(words)
    while i < n:
        word = words[i]
        if word == "--":
            i += 1
            break
        if env and _is_assignment(word):
            i += 1
            continue
        if word.startswith("-") and len(word) > 1:
            option = word.split("=", 1)[0]
            i += 2 if option in valued and "=" not in word and len(word) == len(option) else 1
            continue
        break
    while operands > 0 and i < n and not words[i].startswith("-"):
        i += 1
        operands -= 1
    return i


def _shell_c_script(rest: Sequence[str]) -> str | None:
    """The script of ``-c SCRIPT`` (also ``-lc``, ``-ec``, ``-c`` after other options), if any."""
    skip = False
    for position, word in enumerate(rest):
        if skip:
            skip = False
            continue
        if word in ("-o", "+o", "-O", "+O"):
            skip = True
            continue
        if word in ("-", "--") or word.startswith("--") or word.startswith("+"):
            continue
        if not word.startswith("-"):
            return None
        if "c" in word[1:] and word[1:].isalpha():
            return rest[position + 1] if position + 1 < len(rest) else None
    return None


# ---------------------------------------------------------------------- static outputs

_FAILED = object()


def _static_output(words: Sequence[str], stdin: str | None, reader: _Reader) -> str | object | None:
    """What a command prints, when it can be known statically: echo, printf, cat of its
    input, decoders of their input. None when unknown; _FAILED when a decoder failed."""
    index = next((i for i, w in enumerate(words) if not _is_assignment(w)), len(words))
    words = words[index:]
    if not words:
        return None
    name = base_name(words[0]).lower()
    args = list(words[1:])
    if name == "echo":
        escapes = False
        while args and args[0].startswith("-") and set(args[0][1:]) <= set("neE") and len(args[0]) > 1:
            escapes = escapes or "e" in args[0]
            args.pop(0)
        text = " ".join(args)
        return _unescape(text) if escapes or "\\x" in text or "\\0" in text else text
    if name == "printf":
        if args and args[0] == "--":
            args.pop(0)
        if not args:
            return None
        fmt, values = _unescape(args[0]), args[1:]
        if "%" in fmt and values:
            return "".join(values) if fmt.strip() in ("%s", "%b") else fmt.replace("%s", "".join(values))
        return fmt
    if name == "cat" and not args:
        return stdin
    if stdin is None or not reader.decode:
        return None
    if name in ("base64", "b64decode", "basenc") and _decoding(args):
        return _b64decode(stdin, reader)
    if name == "openssl" and ("base64" in args or "-base64" in args or "-a" in args) and "-d" in args:
        return _b64decode(stdin, reader)
    if name == "xxd" and any(a.startswith("-r") or (a.startswith("-") and "r" in a) for a in args):
        return _hexdecode(stdin, reader)
    if name in ("gunzip", "zcat") or (name == "gzip" and "-d" in args):
        return _gunzip(stdin, reader)
    if name == "rev":
        return "\n".join(line[::-1] for line in stdin.split("\n"))
    return None


def _decoding(args: Sequence[str]) -> bool:
    return any(
        a in ("-d", "-D", "--decode", "-di", "-id") or (a.startswith("-") and not a.startswith("--") and "d" in a)
        for a in args
    )


def _text(data: bytes, reader: _Reader) -> str | object:
    """Decoded bytes as text when they are printable text; _FAILED otherwise."""
    if len(data) > MAX_DECODED:
        return _FAILED
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _FAILED
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    return text if text and printable >= 0.9 * len(text) else _FAILED


def _b64decode(text: str, reader: _Reader) -> str | object:
    if len(text) > MAX_PAYLOAD or not set(text) <= _B64_CHARS:
        return _FAILED
    compact = "".join(text.split())
    compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return _FAILED
    if data[:2] == b"\x1f\x8b":  # gzip inside: left for gunzip in the pipeline
        return data.decode("latin-1")
    return _text(data, reader)


def _hexdecode(text: str, reader: _Reader) -> str | object:
    if len(text) > MAX_PAYLOAD or not set(text) <= _HEX_CHARS:
        return _FAILED
    try:
        data = bytes.fromhex("".join(text.split()))
    except ValueError:
        return _FAILED
    return _text(data, reader)


def _gunzip(text: str, reader: _Reader) -> str | object:
    try:
        raw = text.encode("latin-1")
        data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, MAX_DECODED + 1)
    except (UnicodeEncodeError, zlib.error):
        return _FAILED
    return _text(data, reader)


_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "v": "\v",
    "'": "'",
    '"': '"',
    "?": "?",
}


def _unescape(text: str) -> str:
    """Backslash escapes as printf, echo -e and $'...' read them (\\xHH, \\NNN, \\0NNN, \\uHHHH, \\n...)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "\\" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "x":
            digits = _take(text, i + 2, 2, "0123456789abcdefABCDEF")
            if digits:
                out.append(chr(int(digits, 16)))
                i += 2 + len(digits)
                continue
        elif nxt in "uU":
            digits = _take(text, i + 2, 4 if nxt == "u" else 8, "0123456789abcdefABCDEF")
            if digits and int(digits, 16) < 0x110000:
                out.append(chr(int(digits, 16)))
                i += 2 + len(digits)
                continue
        elif nxt in "01234567":
            start = i + 2 if nxt == "0" else i + 1
            digits = _take(text, start, 3, "01234567")
            if digits or nxt == "0":
                out.append(chr(int(digits or "0", 8) & 0xFF))
                i = start + len(digits)
                continue
        elif nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _take(text: str, start: int, count: int, allowed: str) -> str:
    end = start
    while end < len(text) and end - start < count and text[end] in allowed:
        end += 1
    return text[start:end]


# ---------------------------------------------------------------------- the parser


class _Parser:
    """Cuts a script into pipelines of simple commands (see the module docstring)."""

    def __init__(self, text: str, reader: _Reader) -> None:
        self.text = text
        self.n = len(text)
        self.i = 0
        self.reader = reader
        self.pending: list[tuple[_Simple, str, bool]] = []  # here-documents waiting for the next line

    def pipelines(self) -> Iterator[list[_Simple]]:
        pipeline: list[_Simple] = []
        simple = _Simple()
        while self.i < self.n:
            char = self.text[self.i]
            if char in _SPACE:
                self.i += 1
            elif char == "\\" and self.text[self.i + 1 : self.i + 2] == "\n":
                self.i += 2
            elif char == "#" and (self.i == 0 or self.text[self.i - 1] in " \t\n;&|("):
                end = self.text.find("\n", self.i)
                self.i = self.n if end < 0 else end
            elif char in _SEPARATORS:
                self.i += 1
                if char == "\n" and self.pending:
                    self.heredocs()
                if char == "|" and self.text[self.i : self.i + 1] != "|":
                    pipeline.append(simple)
                    simple = _Simple()
                    continue
                if char in "|&" and self.text[self.i : self.i + 1] == char:
                    self.i += 1
                if simple.words or simple.stdin or simple.subs:
                    pipeline.append(simple)
                if pipeline:
                    yield pipeline
                pipeline, simple = [], _Simple()
            elif char in "<>" or (char.isdigit() and self.text[self.i + 1 : self.i + 2] in ("<", ">")):
                self.redirection(simple)
            else:
                word = self.word(simple)
                if word is None:
                    continue
                if not simple.words and word.text in _KEYWORDS and not word.quoted:
                    continue
                if not simple.words and word.text in _SKIP_COMMANDS and not word.quoted:
                    self.skip_to_separator()
                    continue
                simple.words.append(word.text)
        if simple.words or simple.stdin or simple.subs:
            pipeline.append(simple)
        if pipeline:
            yield pipeline

    def skip_to_separator(self) -> None:
        while self.i < self.n and self.text[self.i] not in ";\n":
            self.i += 1

    def redirection(self, simple: _Simple) -> None:
        text = self.text
        while self.i < self.n and text[self.i].isdigit():
            self.i += 1
        if text.startswith("<<<", self.i):
            self.i += 3
            self.spaces()
            word = self.word(simple)
            if word is not None:
                simple.stdin.append(word.text + "\n")
            return
        if text.startswith("<<", self.i):
            self.i += 2
            strip = text.startswith("-", self.i)
            if strip:
                self.i += 1
            self.spaces()
            word = self.word(simple, substitute=False)
            if word is not None:
                self.pending.append((simple, word.text, strip))
            return
        self.i += 1
        while self.i < self.n and text[self.i] in "<>&|":
            self.i += 1
        if text.startswith("-", self.i) or (self.i < self.n and text[self.i].isdigit() and text[self.i - 1] == "&"):
            self.i += 1
            return
        self.spaces()
        self.word(simple)  # the target, dropped

    def spaces(self) -> None:
        while self.i < self.n and self.text[self.i] in _SPACE:
            self.i += 1

    def heredocs(self) -> None:
        """Reads the bodies of the here-documents opened on the line just ended."""
        for simple, delimiter, strip in self.pending:
            lines: list[str] = []
            while self.i < self.n:
                end = self.text.find("\n", self.i)
                line = self.text[self.i : self.n if end < 0 else end]
                self.i = self.n if end < 0 else end + 1
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
                lines.append(line.lstrip("\t") if strip else line)
            body = "\n".join(lines) + "\n"
            simple.stdin.append(body)
            simple.heredocs.append(body)
        self.pending = []

    def word(self, simple: _Simple, substitute: bool = True) -> _Word | None:
        """The next word, quotes removed and substitutions made; None at a separator."""
        parts: list[str] = []
        quoted = False
        text = self.text
        start = self.i
        while self.i < self.n:
            char = text[self.i]
            if char in _SPACE or char in _SEPARATORS or (char in "<>" and parts):
                break
            if char in "<>":
                break
            quoted = quoted or char in "'\"`"
            if char == "\\":
                parts.append(text[self.i + 1 : self.i + 2])
                self.i += 2
            elif char == "'":
                end = text.find("'", self.i + 1)
                if end < 0:  # unterminated: a cut value; read the rest as a script
                    self.reader.script(text[self.i + 1 :], "unterminated quote", MAX_DEPTH)
                    self.i = self.n
                    break
                parts.append(text[self.i + 1 : end])
                self.i = end + 1
            elif char == '"':
                parts.append(self.double_quoted(simple, substitute))
            elif char == "$" and text.startswith("$'", self.i):
                end = text.find("'", self.i + 2)
                end = self.n if end < 0 else end
                parts.append(_unescape(text[self.i + 2 : end]))
                self.i = end + 1
            elif (char == "$" and substitute) or char == "`":
                parts.append(self.expansion(simple))
            else:
                parts.append(self.plain(_PLAIN))
        if self.i == start:
            self.i += 1
            return None
        return _Word("".join(parts), quoted)

    def plain(self, run: re.Pattern[str]) -> str:
        """The run of ordinary characters at self.i (at least one), advancing past it."""
        found = run.match(self.text, self.i)
        end = found.end() if found is not None else self.i + 1
        start, self.i = self.i, end
        return self.text[start:end]

    def expansion(self, simple: _Simple) -> str:
        """The value of the ``$...`` or backquote substitution at self.i, advancing past it."""
        if self.text[self.i] == "`":
            end = self.text.find("`", self.i + 1)
            end = self.n if end < 0 else end
            value = self.substitution(self.text[self.i + 1 : end], simple)
            self.i = end + 1
        else:
            value = self.dollar(simple)
        simple.substituted = simple.substituted or bool(value)
        return value

    def double_quoted(self, simple: _Simple, substitute: bool) -> str:
        text = self.text
        self.i += 1
        parts: list[str] = []
        while self.i < self.n and text[self.i] != '"':
            char = text[self.i]
            if char == "\\" and text[self.i + 1 : self.i + 2] in ('"', "\\", "$", "`", "\n"):
                parts.append(text[self.i + 1])
                self.i += 2
            elif (char == "$" and substitute and not text.startswith("$'", self.i)) or char == "`":
                parts.append(self.expansion(simple))
            else:
                parts.append(self.plain(_PLAIN_QUOTED))
        if self.i >= self.n:  # unterminated: a cut value; read what it holds as a script
            self.reader.script("".join(parts), "unterminated quote", MAX_DEPTH)
        self.i += 1
        return "".join(parts)

    def dollar(self, simple: _Simple) -> str:
        """$NAME, ${NAME}, ${NAME:-default}, $(...), $((...)); the text at self.i starts with '$'."""
        text = self.text
        nxt = text[self.i + 1 : self.i + 2]
        if text.startswith("$((", self.i):
            end = text.find("))", self.i + 3)
            self.i = self.n if end < 0 else end + 2
            return ""
        if nxt == "(":
            end = _matching_paren(text, self.i + 2)
            body = text[self.i + 2 : end]
            self.i = min(end + 1, self.n)
            return self.substitution(body, simple)
        if nxt == "{":
            end = text.find("}", self.i + 2)
            end = self.n if end < 0 else end
            inner = text[self.i + 2 : end]
            self.i = end + 1
            name, default = inner, None
            for operator in (":-", "-", ":=", "="):
                if operator in inner:
                    name, _, default = inner.partition(operator)
                    break
            return self.reader.substitute(name, default) if _is_name(name) else ""
        end = self.i + 1
        while end < self.n and text[end] in _NAME_CHARS:
            end += 1
        if end == self.i + 1:
            if nxt and nxt in "@*#?$!0123456789-":
                self.i += 2
                return ""
            self.i += 1
            return "$"
        name = text[self.i + 1 : end]
        self.i = end
        return self.reader.substitute(name, None)

    def substitution(self, body: str, simple: _Simple) -> str:
        """A command substitution: parsed later as a script of its own; its static output, if any, is its value."""
        simple.subs.append(body)
        output = _pipeline_output(body, self.reader)
        if output is _FAILED:
            simple.failed = True
        return output.strip("\n") if isinstance(output, str) else ""


def _is_name(name: str) -> bool:
    return bool(name) and name[0] in _NAME_START and all(c in _NAME_CHARS for c in name)


def _matching_paren(text: str, start: int) -> int:
    depth, i, n = 1, start, len(text)
    while i < n:
        char = text[i]
        if char == "'":
            end = text.find("'", i + 1)
            i = n if end < 0 else end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return n


def _pipeline_output(body: str, reader: _Reader) -> str | object | None:
    """The static output of a command substitution's last pipeline, when it can be known;
    _FAILED when a decoder in it failed or had no known input."""
    reader.budget.probes += 1
    too_much = reader.budget.probes > MAX_PROBES or reader.budget.script_chars > MAX_SCRIPT_CHARS
    if too_much or len(body) > 2 * MAX_PAYLOAD or reader.nesting >= MAX_DEPTH:
        reader.out.truncated = True
        return None
    reader.budget.script_chars += len(body)
    probe = _Reader(reader.env, reader.files, share=reader)
    output: str | object | None = None
    for pipeline in _Parser(body, probe).pipelines():
        output = None
        decoding = failed = False
        for position, simple in enumerate(pipeline):
            words = simple.words
            feed = output if position > 0 else (simple.stdin[0] if simple.stdin else None)
            result = _static_output(words, feed, probe)
            if words and base_name(words[0]).lower() in _DECODERS and probe.decode:
                decoding = True
                failed = failed or not isinstance(result, str)
            output = result if isinstance(result, str) else None
        if decoding and failed:
            output = _FAILED
    return output


def expand(
    argv: Sequence[tuple[str, str]],
    env: Mapping[str, str],
    files: Mapping[str, str] | None = None,
    decode: bool = True,
) -> Expansion:
    """Everything a container with this argv ((where, item) pairs of command and args) runs,
    given its environment (for ``$NAME`` in scripts) and the text of files it can read (by
    path, for ``sh FILE``); ``decode=False`` leaves encoded payloads alone."""
    reader = _Reader(dict(env), files or {}, decode=decode)
    if argv:
        reader.command([item for _, item in argv], argv[0][0], 0, [where for where, _ in argv])
    out = reader.out
    out.programs = list(dict.fromkeys(out.programs))
    return out


def argv_of(container: ContainerView) -> list[tuple[str, str]]:
    """(where, item) of the container's command and args."""
    command = [(container.command_from, item) for item in container.command]
    return command + [(container.args_from, item) for item in container.args]


def expand_k8s_vars(argv: Sequence[tuple[str, str]], env: Mapping[str, str]) -> tuple[list[tuple[str, str]], bool]:
    """Kubernetes' own expansion of command and args: ``$(NAME)`` becomes the value of the
    container's env var NAME when it is defined (else stays as written), ``$$`` is a ``$``.
    At most :data:`MAX_SUBSTITUTED` characters are substituted for the whole argv; past that
    references stay as written, and the second value returned is True."""
    if not env or not any("$(" in item for _, item in argv):
        return list(argv), False
    budget = [MAX_SUBSTITUTED]
    expanded = [(where, _k8s_expand(item, env, budget) if "$(" in item else item) for where, item in argv]
    return expanded, budget[0] < 0


def _k8s_expand(text: str, env: Mapping[str, str], budget: list[int]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        i = dollar
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i):
            end = text.find(")", i + 2)
            name = text[i + 2 : end] if end > 0 else ""
            value = env.get(name) if _is_name(name) else None
            if value is None or len(value) > budget[0]:
                if value is not None:
                    budget[0] = -1
                out.append(text[i : end + 1] if end > 0 else text[i:])
                i = n if end < 0 else end + 1
            else:
                out.append(value)
                budget[0] -= len(value)
                i = end + 1
        else:
            out.append("$")
            i += 1
    return "".join(out)


def shell_programs(script: str) -> list[str]:
    """Base names of the programs a shell script runs, in order (wrappers included)."""
    return [name for _, name in expand([("script", "sh"), ("script", "-c"), ("script", script)], {}).programs[1:]]
