"""Output of a scan: text for people, JSON for machines, SARIF 2.1.0 for code-scanning services."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from minerguard import __version__
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
    notes += [f"policy {p.name}: runtime not evaluable offline (needs Falco events)" for p in policies if p.runtime]
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


SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS = {"Enforce": "error", "Audit": "warning"}


def sarif(results: Sequence[Mapping[str, Any]], policies: Sequence[Policy], run: Run) -> dict[str, Any]:
    """The scan as one SARIF 2.1.0 run: a rule per policy and signal kind, a result per finding."""
    rules: dict[str, dict[str, Any]] = {}
    modes = {p.name: p.mode for p in policies}
    found: list[dict[str, Any]] = []
    for r in results:
        for e in r["evidence"]:
            rule_id = f"{r['policy']}/{e['signal']}"
            rule = rules.setdefault(
                rule_id, _rule(rule_id, r["policy"], e["signal"], modes.get(r["policy"], r["mode"]))
            )
            location: dict[str, Any] = {"artifactLocation": {"uri": quote(Path(r["source"]).as_posix())}}
            if "line" in e:
                location["region"] = {"startLine": e["line"], "startColumn": e["column"]}
            found.append(
                {
                    "ruleId": rule_id,
                    "ruleIndex": list(rules).index(rule_id),
                    "level": rule["defaultConfiguration"]["level"],
                    "message": {"text": printable(f"{r['kind']} {r['namespace']}/{r['name']}: {e['detail']}")},
                    "locations": [{"physicalLocation": location}],
                    "properties": {"container": e["container"], "mode": r["mode"], "actions": r["actions"]},
                }
            )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "minerguard", "version": __version__, "rules": list(rules.values())}},
                "invocations": [
                    {
                        "executionSuccessful": not run.errors,
                        "toolExecutionNotifications": [
                            {"level": "error", "message": {"text": printable(str(error))}} for error in run.errors
                        ],
                    }
                ],
                "results": found,
            }
        ],
    }


def _rule(rule_id: str, policy: str, signal: str, mode: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": f"{signal} signal of MinerPolicy {policy}",
        "shortDescription": {"text": f"MinerPolicy {policy} ({mode}) matched on a {signal} signal"},
        "defaultConfiguration": {"level": LEVELS.get(mode, "warning")},
        "properties": {"tags": ["security", "cryptominer"], "policy": policy, "signal": signal},
    }


def write_sarif(out: TextIO, results: Sequence[Mapping[str, Any]], policies: Sequence[Policy], run: Run) -> None:
    json.dump(sarif(results, policies, run), out, indent=2)
    out.write("\n")
