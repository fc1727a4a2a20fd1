"""docs/policy-reference.md is generated from the CRDs (hack/gen_policy_reference.py) and must not drift from them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.scripts import load_script

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "policy-reference.md"


gen = load_script("gen_policy_reference")


def rows(text: str) -> dict[str, list[str]]:
    """Table rows of the document by field path: [type, required, default, description]."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.*) \|$", line)
        if match:
            # Split on cell borders only (a pattern may hold an escaped \|).
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", match.group(2))]
            found[match.group(1)] = cells
    return found


def schema_paths(schema: Mapping[str, Any], path: str) -> Iterator[str]:
    yield path
    if schema.get("type") == "array":
        schema, path = schema["items"], f"{path}[]"
    for name, sub in (schema.get("properties") or {}).items():
        yield from schema_paths(sub, f"{path}.{name}")


def crd_schema(kind: str) -> Mapping[str, Any]:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["spec"]["names"]["kind"] == kind:
            return dict(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no CRD for {kind}")


def section_of(text: str, kind: str) -> str:
    start = text.index(f"## {kind}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_committed_reference_equals_a_fresh_render() -> None:
    assert DOC.read_text() == gen.render(), "docs/policy-reference.md is out of date: run 'make docs'"


@pytest.mark.parametrize("kind", ["MinerPolicy", "MinerIncident"])
def test_every_schema_field_has_a_row_with_its_description(kind: str) -> None:
    schema = crd_schema(kind)
    table = rows(section_of(gen.render(), kind))
    for part in ("spec", "status"):
        sub = schema["properties"][part]
        for path in schema_paths(sub, part):
            assert path in table, f"{kind}: {path} is not documented"
    leaf = schema["properties"]["spec"]["properties"]["mode"]
    assert " ".join(leaf["description"].split()) in table["spec.mode"][3]
    assert table["spec.mode"][1] == "yes"


def test_types_constraints_and_defaults_come_from_the_schema() -> None:
    policy = rows(section_of(gen.render(), "MinerPolicy"))
    assert policy["spec.mode"][0] == "string, one of `Enforce`, `Audit`"
    assert policy["spec.signals.pools.ports[].port"][:2] == ["integer, minimum 1, maximum 65535", "yes"]
    assert "matches `^sha256:[a-f0-9]{64}$`" in policy["spec.signals.imageDigests[].digest"][0]
    # Defaults stated in the descriptions (the CRDs carry no schema defaults).
    assert policy["spec.signals.cpu.pod.window"][2] == "5m"
    assert policy["spec.signals.cpu.pod.relativeTo"][2] == "Limit"
    assert policy["spec.match.weakSignalsRequired"][2] == "2"
    assert policy["spec.actions[].when"][2] == "Always"
    assert policy["spec.mode"][2] == "-"
    # CEL rules are shown with the field they guard.
    assert "Rule: give exactly one of glob or regex." in policy["spec.signals.images"][3]
    assert "Rule: mode Enforce needs at least one action" in policy["spec"][3]
    incident = rows(section_of(gen.render(), "MinerIncident"))
    assert incident["spec.workload.name"][1] == "yes"
    assert incident["status.pods[].node"][0] == "string"


def test_check_mode_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "policy-reference.md"
    stale.write_text(gen.render().replace("Enforce", "Enforced", 1))
    assert gen.main(["--check", "--output", str(stale)]) == 1
    assert gen.main(["--output", str(stale)]) == 0
    assert gen.main(["--check", "--output", str(stale)]) == 0
