"""Output of a scan: text for people, JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from minerguard.domain.policy import Policy
from minerguard.domain.text import plural, printable
from minerguard.scan.reading import Run
from minerguard.scan.shapes import not_evaluable


def _notes(policies: Sequence[Policy]) -> list[str]:
    notes = [
        f"policy {p.name}: {', '.join(p.metric_kinds)} not evaluable offline (needs Prometheus)"
        for p in policies
        if p.metric_kinds
    ]
    notes += [
        f"policy {p.name}: has a namespaceSelector; namespace labels are unknown offline, so it applies to nothing"
        for p in policies
        if p.scope.namespace_selector is not None and not p.scope.namespace_selector.is_empty
    ]
    return notes


def write_text(
    out: TextIO, results: Sequence[Mapping[str, Any]], policies: Sequence[Policy], workloads: int, run: Run
) -> None:
    for r in results:
        actions = f"actions: {', '.join(r['actions'])}" if r["actions"] else "report only"
        subject = f"{r['source']}: {r['kind']} {r['namespace']}/{r['name']}"
        print(printable(f"{subject} matches {r['policy']} ({r['mode']}, {actions})"), file=out)
        for e in r["evidence"]:
            print(printable(f"    {e['signal']} in container {e['container']}: {e['detail']}"), file=out)
    for note in _notes(policies):
        print(printable(f"note: {note}"), file=out)
    matches = f"{len(results)} match" + ("" if len(results) == 1 else "es")
    skipped = f", {plural(len(run.skipped), 'other object')} skipped" if run.skipped else ""
    print(f"{matches} ({workloads} workloads{skipped}, {len(policies)} policies)", file=out)


def write_json(out: TextIO, results: Sequence[Mapping[str, Any]], policies: Sequence[Policy], run: Run) -> None:
    document = {
        "results": list(results),
        "notEvaluable": not_evaluable(policies),
        "notes": _notes(policies),
        "skipped": run.skipped,
        "errors": [{"source": e.source, "problem": e.problem} for e in run.errors],
    }
    json.dump(document, out, indent=2)
    out.write("\n")
