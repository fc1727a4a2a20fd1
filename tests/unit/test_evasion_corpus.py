"""The adversarial corpus in tests/data/evasion/ against the default policy pack.

Each file holds one case: an ``EvasionCase`` document (its public source, its class, whether
the default pack must quarantine it, and every finding expected, as policy/signal/strength),
then the Kubernetes objects of the case (ConfigMaps it reads, and the workload). The
miners are modelled on public reports of Kubernetes cryptojacking and hide their
indicators behind wrappers, option spellings, encodings, data (configs, $(VAR), ConfigMaps)
and padding; the benign look-alikes are ordinary workloads that resemble them.

Every case is run through the engine with the default pack (exactly as the operator does,
ConfigMaps included) and through ``minerguard scan`` (which reads the ConfigMaps present in
the scanned files), and the findings must be exactly the expected ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard.domain.detection import evaluate, prepare
from minerguard.domain.policy import Policy, parse_policy
from minerguard.domain.workload import ConfigMapIndex, workloads_from_manifest
from minerguard.scan import main as scan_main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "evasion"
PACK = ROOT / "manifests" / "policies"
MINERS = sorted((CORPUS / "miners").glob("*.yaml"))
BENIGN = sorted((CORPUS / "benign").glob("*.yaml"))
CLASSES = ("wrappers", "option-spellings", "encodings", "config-in-data", "configmaps", "length", "precision")


def load_pack() -> list[Policy]:
    return [parse_policy(doc) for path in sorted(PACK.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


POLICIES = load_pack()


def load_case(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    case, objects = docs[0], docs[1:]
    assert case["kind"] == "EvasionCase", path
    return case, objects


def findings(objects: list[dict[str, Any]]) -> tuple[set[str], bool]:
    """Every (policy/signal/strength) the pack finds in the case's workloads, and whether one is quarantined."""
    config_maps = ConfigMapIndex.from_objects(o for o in objects if o.get("kind") == "ConfigMap")
    found: set[str] = set()
    quarantined = False
    workloads = [w for doc in objects for w in workloads_from_manifest(doc, config_maps)]
    assert workloads, "every case has a workload"
    for workload in workloads:
        prepared = prepare(workload)
        for policy in POLICIES:
            verdict = evaluate(policy, workload, None, prepared=prepared)
            found |= {f"{verdict.policy}/{e.signal}/{e.strength}" for e in verdict.evidence}
            quarantined |= verdict.matched and "quarantine" in verdict.actions
    return found, quarantined


def test_corpus_size_sources_and_classes() -> None:
    assert len(MINERS) >= 30 and len(BENIGN) >= 30
    classes: set[str] = set()
    for path in MINERS + BENIGN:
        text = path.read_text(encoding="utf-8")
        case, objects = load_case(path)
        assert case["source"] and "Modelled on:" in text.splitlines()[1], path
        assert any(mark in case["source"] for mark in ("constructed look-alike", "http", "report")), path
        assert case["quarantine"] is (path.parent.name == "miners"), path
        assert any(o.get("kind") != "ConfigMap" for o in objects), path
        classes |= set(case["class"].split("+"))
    assert set(CLASSES) <= classes, set(CLASSES) - classes


@pytest.mark.parametrize("path", MINERS + BENIGN, ids=lambda p: p.stem)
def test_case_gives_exactly_the_expected_signals(path: Path) -> None:
    case, objects = load_case(path)
    found, quarantined = findings(objects)
    assert sorted(found) == sorted(case["signals"])
    assert quarantined is case["quarantine"]


@pytest.mark.parametrize("path", MINERS + BENIGN, ids=lambda p: p.stem)
def test_scan_reads_configmaps_in_the_files_and_agrees(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case, _ = load_case(path)
    code = scan_main(["--policies", str(PACK), "-o", "json", str(path)])
    out = json.loads(capsys.readouterr().out)
    enforced = [m for m in out["results"] if "quarantine" in m["actions"]]
    assert code == (1 if out["results"] else 0)
    assert bool(enforced) is case["quarantine"], out["results"]
    strong = {f"{m['policy']}/{e['signal']}/{e['strength']}" for m in out["results"] for e in m["evidence"]}
    assert strong <= set(case["signals"])


def test_the_corpus_as_a_whole_with_scan(capsys: pytest.CaptureFixture[str]) -> None:
    """``minerguard scan`` over the whole folder: every miner matched, no look-alike quarantined."""
    scan_main(["--policies", str(PACK), "-o", "json", str(CORPUS)])
    out = json.loads(capsys.readouterr().out)
    quarantined = {Path(m["source"]).stem for m in out["results"] if "quarantine" in m["actions"]}
    assert quarantined == {p.stem for p in MINERS}


def test_a_configmap_from_another_namespace_is_not_used() -> None:
    _, objects = load_case(CORPUS / "miners" / "m21-configmap-envfrom.yaml")
    moved: list[Mapping[str, Any]] = []
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": "elsewhere"}}
        moved.append(obj)
    found, quarantined = findings([dict(o) for o in moved])
    assert not quarantined and not found
