"""Where a finding stands in its file: the line and column of the value, for JSON and SARIF output.

Only files with findings are read again, as YAML nodes (which keep their marks), once each. The
object is found by its document and List item numbers (:attr:`SourceObject.path`), its container by
name, and the value as the first scalar of that container whose text holds what matched; failing
that, the container, then the object. Positions count from 1, as editors and SARIF do.
"""

from __future__ import annotations

from collections.abc import Iterator

import yaml

from minerguard.domain.text import ELLIPSIS
from minerguard.scan.reading import InputError, Loader, Run, SourceObject, read

Position = tuple[int, int]
CONTAINER_KEYS = ("containers", "initContainers", "ephemeralContainers")
MAX_DEPTH = 16


def _start(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _walk(node: yaml.Node, depth: int = 0) -> Iterator[yaml.Node]:
    """Every node under ``node``, depth first, in file order (bounded in depth)."""
    yield node
    if depth >= MAX_DEPTH:
        return
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield from _walk(value, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item, depth + 1)


class Positions:
    """Line and column of findings, reading each file with findings once more."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._documents: dict[str, list[yaml.Node | None]] = {}

    def _nodes(self, source: str) -> list[yaml.Node | None]:
        if source not in self._documents:
            try:
                text = read(source, self.run).decode("utf-8")
                self._documents[source] = list(yaml.compose_all(text, Loader=Loader))
            except (InputError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
                self._documents[source] = []  # already reported when the file was read for the scan
        return self._documents[source]

    def _object(self, obj: SourceObject) -> yaml.Node | None:
        documents = self._nodes(obj.source)
        if not obj.path or obj.path[0] > len(documents):
            return None
        node = documents[obj.path[0] - 1]
        for index in obj.path[1:]:
            items = _get(node, "items")
            if not isinstance(items, yaml.SequenceNode) or index > len(items.value):
                return None
            node = items.value[index - 1]
        return node

    def of(self, obj: SourceObject, container: str, value: str) -> Position | None:
        """Where ``value`` (as evidence shows it, perhaps shortened) stands in ``container`` of ``obj``."""
        node = self._object(obj)
        if node is None:
            return None
        found = self._container(node, container)
        if found is None:
            return _start(node)
        needle = value.split(ELLIPSIS, 1)[0]
        if needle:
            for inner in _walk(found):
                if isinstance(inner, yaml.ScalarNode) and needle in inner.value:
                    return _start(inner)
        return _start(found)

    def _container(self, node: yaml.Node, name: str) -> yaml.Node | None:
        for mapping in (n for n in _walk(node) if isinstance(n, yaml.MappingNode)):
            for field in CONTAINER_KEYS:
                items = _get(mapping, field)
                if isinstance(items, yaml.SequenceNode):
                    for item in items.value:
                        named = _get(item, "name")
                        if isinstance(named, yaml.ScalarNode) and named.value == name and isinstance(item, yaml.Node):
                            return item
        return None
