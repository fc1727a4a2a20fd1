#!/usr/bin/env python3
"""Generate docs/policy-reference.md from the CRD schemas in crds/ (``make docs``).

Every field of MinerPolicy and MinerIncident (spec, then status) becomes one table row:
its path, type with constraints, whether it is required, its default and its
description. The CRDs declare no ``default:`` (the operator applies the defaults), so the
Default column shows the default the field's description states, or "-".

    hack/gen_policy_reference.py           write docs/policy-reference.md
    hack/gen_policy_reference.py --check   exit 1 when the file differs from a fresh render

tests/unit/test_docs.py renders again and compares, so the file cannot drift from the CRDs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"
OUTPUT = ROOT / "docs" / "policy-reference.md"
KINDS = ("MinerPolicy", "MinerIncident")

# Defaults stated in descriptions: "(default 5m)", "Default Limit.", "Defaults per signal kind.", "Always (default)".
_DEFAULT_AFTER = re.compile(r"\b[Dd]efaults?:? (?:to )?(.+?)(?:[.)]+(?:\s|$)|$)")
_DEFAULT_BEFORE = re.compile(r"(\S+) \(default\)")


def load_crds(directory: Path = CRDS) -> dict[str, dict[str, Any]]:
    """The minerguard CRDs by kind, each with the name of its file under ``_file``."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] in KINDS:
                found[doc["spec"]["names"]["kind"]] = {**doc, "_file": path.name}
    missing = set(KINDS) - set(found)
    if missing:
        raise SystemExit(f"no CRD for {', '.join(sorted(missing))} in {directory}")
    return found


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def cell(text: str) -> str:
    return one_line(text).replace("|", "\\|")


def code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def type_of(schema: Mapping[str, Any]) -> str:
    """The type with its constraints, e.g. ``string, one of `Enforce`, `Audit` ``."""
    kind = schema.get("type", "any")
    if kind == "array":
        item = schema.get("items") or {}
        base = f"array of {type_of(item).split(',')[0]}"
    elif kind == "object" and schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        base = "object (free-form)"
    else:
        base = str(kind)
    extra: list[str] = []
    if "format" in schema:
        extra.append(f"format {schema['format']}")
    if "enum" in schema:
        extra.append("one of " + ", ".join(code(v) for v in schema["enum"]))
    if kind == "array" and "enum" in (schema.get("items") or {}):
        extra.append("items one of " + ", ".join(code(v) for v in schema["items"]["enum"]))
    if kind == "array" and "pattern" in (schema.get("items") or {}):
        extra.append(f"items match {code(schema['items']['pattern'])}")
    if "minimum" in schema:
        extra.append(f"minimum {schema['minimum']}")
    if "maximum" in schema:
        extra.append(f"maximum {schema['maximum']}")
    if "minLength" in schema:
        extra.append(f"at least {schema['minLength']} characters")
    if "maxLength" in schema:
        extra.append(f"at most {schema['maxLength']} characters")
    if "maxItems" in schema:
        extra.append(f"at most {schema['maxItems']} items")
    if "minProperties" in schema:
        extra.append(f"at least {schema['minProperties']} field(s)")
    if "pattern" in schema:
        extra.append(f"matches {code(schema['pattern'])}")
    if schema.get("x-kubernetes-list-type") == "map":
        extra.append("list keyed by " + ", ".join(code(k) for k in schema.get("x-kubernetes-list-map-keys", [])))
    return ", ".join([base, *extra])


def default_of(schema: Mapping[str, Any]) -> str:
    if "default" in schema:
        return code(schema["default"])
    description = one_line(schema.get("description", ""))
    match = _DEFAULT_AFTER.search(description) or _DEFAULT_BEFORE.search(description)
    return cell(match.group(1)) if match else "-"


def rules_of(schema: Mapping[str, Any]) -> list[str]:
    own = list(schema.get("x-kubernetes-validations") or [])
    own += list((schema.get("items") or {}).get("x-kubernetes-validations") or [])
    return [one_line(r.get("message") or r["rule"]) for r in own]


def fields(schema: Mapping[str, Any], path: str, required: bool) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    """(path, schema, required) for the field at ``path`` and every field below it, in schema order."""
    yield path, schema, required
    if schema.get("type") == "array" and isinstance(schema.get("items"), Mapping):
        schema, path = schema["items"], f"{path}[]"
    needed = set(schema.get("required") or [])
    for name, sub in (schema.get("properties") or {}).items():
        yield from fields(sub, f"{path}.{name}", name in needed)


def table(schema: Mapping[str, Any], root: str, required: bool) -> list[str]:
    lines = ["| Field | Type | Required | Default | Description |", "|---|---|---|---|---|"]
    for path, sub, needed in fields(schema, root, required):
        description = cell(sub.get("description", ""))
        rules = rules_of(sub)
        if rules:
            description = (description + " " if description else "") + " ".join(f"Rule: {cell(r)}." for r in rules)
        lines.append(
            f"| `{path}` | {cell(type_of(sub))} | {'yes' if needed else 'no'} | {default_of(sub)} | {description} |"
        )
    return lines


def section(crd: Mapping[str, Any]) -> list[str]:
    names = crd["spec"]["names"]
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = version["schema"]["openAPIV3Schema"]
    top_required = set(schema.get("required") or [])
    short = ", ".join(code(s) for s in names.get("shortNames", []))
    scope = "cluster-scoped" if crd["spec"]["scope"] == "Cluster" else "namespaced"
    out = [
        f"## {names['kind']}",
        "",
        f"`{crd['spec']['group']}/{version['name']}`, {scope}"
        + (f", short name {short}" if short else "")
        + f" (`kubectl get {names['plural']}`), defined in `crds/{crd.get('_file', '')}`.",
        "",
        one_line(schema.get("description", "")),
        "",
    ]
    for part, title in (("spec", "Spec: what you write"), ("status", "Status: what the operator reports")):
        sub = (schema.get("properties") or {}).get(part)
        if not sub:
            continue
        out += [f"### {title}", "", *table(sub, part, part in top_required), ""]
    return out


def render(crds: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    crds = load_crds() if crds is None else crds
    lines = [
        "<!-- Generated by hack/gen_policy_reference.py from crds/*.yaml (make docs). Do not edit by hand. -->",
        "# Policy reference",
        "",
        "Every field of the MinerPolicy and MinerIncident custom resources, generated from the CRD",
        "schemas in `crds/` (the API server validates against the same schemas). A path ending in",
        "`[]` is a field of each list item. The CRDs declare no schema defaults: the operator applies",
        "them, and the Default column gives the default each description states (`-` for none).",
        "Lines marked Rule are CEL validation rules the API server enforces.",
        "",
    ]
    for kind in KINDS:
        lines += section(crds[kind])
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    ap.add_argument("--output", type=Path, default=OUTPUT)
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run 'make docs'", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
