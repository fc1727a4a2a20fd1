"""The release workflow publishes what the charts install: the default image, signed, with an SBOM, and both charts.

actionlint (make lint) checks the workflow's syntax and expressions; this checks its content
against the charts: the image it pushes is the chart's default image.repository, for amd64 and
arm64, signed keyless with cosign, with a syft SBOM, and both charts are pushed as OCI artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def test_release_pushes_the_charts_default_image() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    values = yaml.safe_load((ROOT / "helm" / "minerguard" / "values.yaml").read_text())
    assert workflow["env"]["IMAGE"] == values["image"]["repository"]
    build = next(s for s in steps() if str(s.get("uses", "")).startswith("docker/build-push-action@"))
    assert build["with"]["file"] == "Dockerfile" and build["with"]["push"] is True
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["tags"] == "${{ env.IMAGE }}:${{ steps.version.outputs.version }}"
    # on: push tags (YAML reads the key "on" as True)
    trigger = workflow.get("on", workflow.get(True))
    assert trigger == {"push": {"tags": ["v*.*.*"]}}


def test_release_signs_keyless_attaches_an_sbom_and_publishes_both_charts() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = next(iter(workflow["jobs"].values()))
    assert job["permissions"]["id-token"] == "write" and job["permissions"]["packages"] == "write"
    runs = "\n".join(str(s.get("run", "")) for s in steps())
    assert 'cosign sign --yes "${IMAGE}@${DIGEST}"' in runs, "sign the pushed digest, not a tag"
    assert "cosign attest --yes --type spdxjson" in runs
    sbom = next(s for s in steps() if str(s.get("uses", "")).startswith("anchore/sbom-action@"))
    assert sbom["with"]["format"] == "spdx-json"
    assert "helm/minerguard helm/minerguard-policies" in runs and 'helm push "$archive" "${CHARTS}"' in runs
    assert workflow["env"]["CHARTS"].startswith("oci://ghcr.io/")
