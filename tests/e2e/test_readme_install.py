"""The README's "Install on a real cluster", followed literally: its commands are parsed from README.md and run.

Each ``sh`` block of that section is split into commands (continuation lines joined) and run
with bash from the top of the repository, with the project's helm and kubectl first on PATH
and KUBECONFIG pointing at a bare API server of the test's own (tests/e2e/bare.py): a first
install needs a cluster that does not serve the CRDs yet, and the default pack's cluster-wide
policies must not act on the other tests' namespaces. The local nodes are KWOK-simulated and
run no container, so the chart's Deployment is asserted as objects (its image is the one the
`make image` archive is tagged with), and the operator runs as a process as the chart's
ServiceAccount with the chart's peering. After each command the test checks what the README
promises: detection on in Audit, a miner contained after the switch to Enforce, detection on
after the upgrade and the rollback, the pack gone and the records kept after the uninstalls.
Every check must have run: a README that drops a step fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.bare import Bare
from tests.e2e.cluster import bindir
from tests.e2e.helpers import ROOT

NS = "minerguard-system"
CRDS = {"minerpolicies.minerguard.io", "minerincidents.minerguard.io", "clusterkopfpeerings.kopf.dev"}
PACK = {
    p["metadata"]["name"]: p["spec"]["mode"]
    for path in sorted((ROOT / "manifests" / "policies").glob("*.yaml"))
    for p in yaml.safe_load_all(path.read_text())
    if p
}


def install_commands(readme: str) -> list[str]:
    """The commands of the ``sh`` blocks of the README's "Install on a real cluster" section, in order."""
    section = readme.split("\n## Install on a real cluster\n", 1)[1].split("\n## ", 1)[0]
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for command in re.sub(r"\\\n\s*", "", block).splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                commands.append(command.strip())
    return commands


def test_readme_install_section_is_parsed_as_expected() -> None:
    commands = install_commands((ROOT / "README.md").read_text())
    assert commands[0].startswith("make image")
    assert any(c.startswith("helm install minerguard helm/minerguard --namespace minerguard-system") for c in commands)
    assert any(c.startswith("kubectl apply --server-side -f manifests/install.yaml") for c in commands)
    assert all("\\" not in c for c in commands)


def run(bare: Bare, command: str) -> str:
    env = {**os.environ, "PATH": f"{bindir()}:{os.environ['PATH']}", "KUBECONFIG": str(bare.kubeconfig)}
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, f"README command failed: {command}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def image_reference() -> str:
    out = subprocess.run(
        ["python3", str(ROOT / "hack" / "image.py"), "reference"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def operator_objects_are_there(bare: Bare) -> None:
    assert bare.names("crd") >= CRDS
    assert bare.names("clusterkopfpeerings") == {"minerguard"}
    assert "minerguard-protect-quarantine" in bare.names("validatingadmissionpolicies")
    deploy = bare.get("deployment", "minerguard", "-n", NS)
    # No node here runs containers: the Deployment's image must be the one `make image` tagged.
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == image_reference()


def test_readme_install_with_helm_audit_enforce_upgrade_rollback_uninstall(
    bare_apiserver: Path, tmp_path: Path
) -> None:
    bare = Bare(bare_apiserver, NS)
    apps = "shop"
    done: list[str] = []

    def after_policies_install() -> None:
        operator_objects_are_there(bare)
        assert bare.modes() == dict.fromkeys(PACK, "Audit"), "the README says the pack starts in Audit"
        bare.workload_namespace(apps)
        bare.start_operator(tmp_path, "minerguard", "minerguard")
        bare.detects("installed (Audit)", apps, "Audit")

    def after_enforce() -> None:
        assert bare.modes() == PACK
        bare.detects("switched to Enforce", apps, "Enforce")

    def after_upgrade() -> None:
        operator_objects_are_there(bare)
        bare.detects("operator upgraded", apps, "Enforce")

    def after_rollback() -> None:
        assert bare.modes() == dict.fromkeys(PACK, "Audit")
        bare.detects("pack rolled back to its first revision", apps, "Audit")

    def after_pack_uninstall() -> None:
        assert not bare.names("minerpolicies")

    def after_operator_uninstall() -> None:
        bare.stop_operator()
        assert bare.names("crd") >= CRDS and bare.names("clusterkopfpeerings") == {"minerguard"}
        assert len(bare.get("minerincidents", "-n", apps)["items"]) == 4, "the incidents are kept"
        assert bare.k("get", "deployment", "minerguard", "-n", NS, check=False).returncode != 0

    checks: list[tuple[str, Callable[[], None]]] = [
        (r"^make image\b", lambda: None),
        (r"^helm install minerguard helm/minerguard ", lambda: None),
        (r"^helm install minerguard-policies ", after_policies_install),
        (r"^kubectl get minerpolicies$", lambda: None),
        (r"^helm upgrade minerguard-policies .*--set mode=Enforce", after_enforce),
        (r"^helm upgrade minerguard helm/minerguard ", after_upgrade),
        (r"^helm rollback minerguard-policies 1 ", after_rollback),
        (r"^helm uninstall minerguard-policies ", after_pack_uninstall),
        (r"^helm uninstall minerguard ", after_operator_uninstall),
    ]
    commands = install_commands((ROOT / "README.md").read_text())
    helm_part = commands[: next(i for i, c in enumerate(commands) if c.startswith("kubectl apply"))]
    try:
        for command in helm_part:
            run(bare, command)
            matching = [(p, check) for p, check in checks if re.search(p, command)]
            assert len(matching) == 1, f"the test does not know what to check after: {command}"
            matching[0][1]()
            done.append(matching[0][0])
    finally:
        bare.stop_operator()
    assert done == [p for p, _ in checks], "a step of the README's install story is missing or out of order"


def test_readme_install_without_helm_creates_the_namespace_and_the_pack_in_audit(
    bare_apiserver: Path, tmp_path: Path
) -> None:
    bare = Bare(bare_apiserver, NS)
    commands = install_commands((ROOT / "README.md").read_text())
    plain = [c for c in commands if c.startswith("kubectl apply")]
    assert [c.split("#")[0].split()[-1] for c in plain] == [
        "crds/",
        "manifests/install.yaml",
        "manifests/policies-audit.yaml",
    ]
    assert NS not in bare.names("namespaces")
    for command in plain:
        run(bare, command)
    assert NS in bare.names("namespaces")
    assert bare.get("namespace", NS)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    operator_objects_are_there(bare)
    assert bare.modes() == dict.fromkeys(PACK, "Audit")
    bare.workload_namespace("shop")
    bare.start_operator(tmp_path, "minerguard", "minerguard")
    try:
        incident: dict[str, Any] = bare.detects("installed without Helm", "shop", "Audit")
        assert incident["spec"]["policy"] in PACK
    finally:
        bare.stop_operator()
