"""Reading manifests: files, folders and standard input, YAML and JSON documents, Lists, with every bound."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from minerguard.domain.selectors import show
from minerguard.domain.text import shorten

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_LIST_DEPTH = 8
MAX_OBJECTS = 10_000
"""Objects read from one file, List items included; the rest are ignored (and reported)."""
STDIN = "-"

Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """Bad input: a file and what is wrong with it."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


@dataclass
class Run:
    """What a scan collects: errors, skipped objects, and standard input (read at most once)."""

    errors: list[InputError] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    stdin: bytes | None = None

    def error(self, source: str, problem: str) -> None:
        self.errors.append(InputError(source, shorten(" ".join(problem.split()), 500)))


@dataclass(frozen=True)
class SourceObject:
    """One Kubernetes object read from a source; ``where`` is ``document 2`` or ``item 3 of the List in document 2``."""

    source: str
    where: str
    body: Mapping[str, Any]
    path: tuple[int, ...] = ()
    """The document's number, then the item's number in each List around the object (all from 1)."""


@dataclass
class _Budget:
    """How many more objects one file may yield, and the documents whose Lists were too deep."""

    left: int = MAX_OBJECTS
    exhausted: bool = False
    too_deep: set[str] = field(default_factory=set)


# ---------------------------------------------------------------------------------------
# Reading


def input_files(path: str) -> list[str]:
    """The files a path stands for: itself, or the manifest files under a folder, sorted."""
    if path == STDIN or not os.path.isdir(path):
        return [path]
    found: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        found += [os.path.join(root, n) for n in sorted(names) if n.lower().endswith(MANIFEST_SUFFIXES)]
    return found


def _read_stdin(run: Run) -> bytes:
    if run.stdin is None:
        stream = getattr(sys.stdin, "buffer", None)
        run.stdin = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
    return run.stdin


def read(path: str, run: Run) -> bytes:
    if path == STDIN:
        return _read_stdin(run)
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise InputError(path, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputError(path, "no such file or directory") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"invalid YAML: {exc.problem or exc.context or 'syntax error'}{where}"
    return f"invalid YAML: {exc}"


def _parse(path: str, text: str) -> list[Any]:
    if path.lower().endswith(".json"):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise InputError(path, f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except RecursionError:
            raise InputError(path, "invalid JSON: nested too deeply") from None
        except ValueError as exc:  # e.g. a number of more than 4300 digits
            raise InputError(path, f"invalid JSON: {exc}") from None
    try:
        return list(yaml.load_all(text, Loader=Loader))
    except yaml.YAMLError as exc:
        raise InputError(path, _yaml_problem(exc)) from None
    except RecursionError:
        raise InputError(path, "invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # a value YAML cannot build: 2001-02-30, !!float abc, 5000 digits
        raise InputError(path, f"invalid YAML: {exc}") from None


def _expand(
    body: Any, source: str, where: str, run: Run, budget: _Budget, path: tuple[int, ...], depth: int = 0
) -> Iterator[SourceObject]:
    """The object, or the items of a ``kind: List`` (or ``*List``) object, within the budget."""
    if budget.left <= 0:
        budget.exhausted = True
        return
    budget.left -= 1
    if not isinstance(body, Mapping):
        run.error(source, f"{where} is not a mapping (got {kind_of(body)})")
        return
    kind, items = body.get("kind"), body.get("items")
    if not (isinstance(kind, str) and kind.endswith("List") and "items" in body):
        yield SourceObject(source=source, where=where, body=body, path=path)
        return
    if not isinstance(items, list):
        run.error(source, f"{where}: the items of a {show(kind)} must be a list, got {kind_of(items)}")
        return
    if depth >= MAX_LIST_DEPTH:
        document = where.rsplit(" in ", 1)[-1]
        if document not in budget.too_deep:
            budget.too_deep.add(document)
            run.error(source, f"{document}: Lists nested more than {MAX_LIST_DEPTH} deep")
        return
    for index, item in enumerate(items, start=1):
        inner = f"item {index} of the List in {where}" if depth == 0 else f"item {index} of {where}"
        yield from _expand(item, source, inner, run, budget, (*path, index), depth + 1)


def kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def read_objects(path: str, run: Run, manifests: bool = False) -> list[SourceObject] | None:
    """The objects of one file (or stdin), None if it cannot be read; problems are recorded, never raised.

    With ``manifests``, a file without any document is a problem too."""
    try:
        documents = _parse(path, _decode(path, read(path, run)))
    except InputError as exc:
        run.error(exc.source, exc.problem)
        return None
    if manifests and all(document is None for document in documents):
        run.error(path, "empty: no YAML or JSON document")
        return []
    objects: list[SourceObject] = []
    budget = _Budget()
    for number, document in enumerate(documents, start=1):
        if document is not None:
            objects += _expand(document, path, f"document {number}", run, budget, (number,))
        if budget.exhausted:
            run.error(path, f"more than {MAX_OBJECTS} objects; the rest were not read")
            break
    return objects


def plain(text: str) -> str:
    """A name as messages show it: itself when short and printable, else quoted and abridged."""
    return text if len(text) <= 100 and text.isprintable() else show(text, 100)
