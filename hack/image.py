#!/usr/bin/env python3
"""``make image``: the operator's OCI image without Docker or a registry.

The Dockerfile stays the recipe for people with Docker; this script builds an image with the
same runtime layout from Debian packages and PyPI only:

1. ``pip wheel --no-deps`` builds minerguard's wheel (as the Dockerfile's builder stage does), and
   ``pip download --require-hashes`` fetches the wheels ``requirements.lock`` pins, for CPython
   3.11 on x86_64 Linux (the image's Python), with this machine's own index and certificates;
2. ``mmdebstrap --variant=minbase`` makes a Debian root filesystem with python3, and its
   customize hooks run, inside that root and offline, the Dockerfile's own install steps: a
   virtualenv at /opt/venv from ``requirements.lock`` (``--require-hashes``, wheels only), then
   minerguard's wheel with ``--no-deps``, then the final stage's RUN (the non-root user 65532);
3. ``umoci`` puts that root filesystem in an OCI layout as one layer and writes the image
   configuration taken from the Dockerfile's final stage (ENTRYPOINT, CMD, USER, WORKDIR, ENV,
   EXPOSE, LABEL);
4. ``skopeo`` writes it as an OCI archive and as a docker-archive under ``dist/``, both tagged
   with the chart's default image reference (``<image.repository>:<appVersion>``), so that the
   chart finds it after ``docker load``, ``podman load``, ``kind load image-archive`` or
   ``ctr images import``.

    hack/image.py build        build dist/minerguard-<version>.{oci,docker}.tar
    hack/image.py reference    print the image reference the archives are tagged with
    hack/image.py archives     print the two archive paths

mmdebstrap, umoci and skopeo are Debian packages that ``hack/tools.sh image-tools`` installs.
Only the standard library is used, so this runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
CHART = ROOT / "helm" / "minerguard"
WORK = ROOT / "build" / "image"
DIST = ROOT / "dist"
# The Debian release whose python3 is the image's Python (3.11, like python:3.11-slim).
SUITE = os.environ.get("MINERGUARD_IMAGE_SUITE", "bookworm")
PACKAGES = ["python3", "python3-venv", "ca-certificates"]
# The wheels pip may take for the image's CPython 3.11 on glibc 2.36 (bookworm), x86_64.
PYTHON_VERSION, ABI = "3.11", "cp311"
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
# The PATH of a Debian root (what $PATH means in the Dockerfile's ENV for this base).
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the Dockerfile


@dataclass
class Stage:
    """One FROM ... stage: its base, its name and its instructions in order."""

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


def key_values(arg: str) -> dict[str, str]:
    """``K=V K2="V 2"`` (ENV, LABEL) as a dict."""
    pairs: dict[str, str] = {}
    for token in shlex.split(arg):
        key, _, value = token.partition("=")
        pairs[key] = value
    return pairs


def json_words(arg: str) -> list[str]:
    """The words of an exec-form instruction such as ``["minerguard", "run"]``."""
    return re.findall(r'"([^"]*)"', arg)


@dataclass
class ImageConfig:
    """What the Dockerfile's final stage says the running image is."""

    entrypoint: list[str]
    cmd: list[str]
    user: str
    workdir: str
    env: dict[str, str]
    labels: dict[str, str]
    exposed: list[str]
    runs: list[str]


def final_stage_config(text: str | None = None) -> ImageConfig:
    _, stages = parse_dockerfile(DOCKERFILE.read_text() if text is None else text)
    final = stages[-1]
    env: dict[str, str] = {}
    for arg in final.all("ENV"):
        for key, value in key_values(arg).items():
            env[key] = value.replace("$PATH", env.get("PATH", BASE_PATH))
    labels: dict[str, str] = {}
    for arg in final.all("LABEL"):
        labels.update(key_values(arg))
    return ImageConfig(
        entrypoint=json_words(final.all("ENTRYPOINT")[-1]),
        cmd=json_words(final.all("CMD")[-1]),
        user=final.all("USER")[-1],
        workdir=final.all("WORKDIR")[-1],
        env=env,
        labels=labels,
        exposed=[p if "/" in p else f"{p}/tcp" for arg in final.all("EXPOSE") for p in arg.split()],
        runs=final.all("RUN"),
    )


# --------------------------------------------------------------------------- names


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def chart_value(key: str, text: str) -> str:
    """A top-level scalar of a small YAML file read without a YAML library (Chart.yaml, image: block)."""
    match = re.search(rf"^{key}:\s*\"?([^\"\n#]+?)\"?\s*(#.*)?$", text, flags=re.M)
    if not match:
        raise SystemExit(f"{key} not found")
    return match.group(1).strip()


def reference() -> str:
    """The chart's default image: image.repository from values.yaml, the tag is the chart's appVersion."""
    values = (CHART / "values.yaml").read_text()
    block = re.search(r"^image:\n((?:[ \t]+.*\n|\n)+)", values, flags=re.M)
    if not block:
        raise SystemExit("helm/minerguard/values.yaml has no image: block")
    repository = re.search(r"^\s+repository:\s*(\S+)", block.group(1), flags=re.M)
    if not repository:
        raise SystemExit("helm/minerguard/values.yaml has no image.repository")
    app_version = chart_value("appVersion", (CHART / "Chart.yaml").read_text())
    return f"{repository.group(1)}:{app_version}"


def archives() -> tuple[Path, Path]:
    v = version()
    return DIST / f"minerguard-{v}.oci.tar", DIST / f"minerguard-{v}.docker.tar"


# --------------------------------------------------------------------------- build


def run(*cmd: str, cwd: Path | None = None) -> None:
    res = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {shlex.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run 'hack/tools.sh image-tools' (Debian packages, as root)")


def build() -> None:
    need("mmdebstrap", "umoci", "skopeo")
    if os.geteuid() != 0:
        raise SystemExit("make image runs mmdebstrap in root mode (device nodes, ownership): run it as root")
    config = final_stage_config()
    started = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    ctx = WORK / "ctx"
    ctx.mkdir(parents=True)
    log("building the minerguard wheel")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(ctx), str(ROOT))
    wheels = list(ctx.glob("minerguard-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one minerguard wheel, found {wheels}")
    shutil.copy2(LOCK, ctx / "requirements.lock")
    log("downloading the locked wheels (hashes checked)")
    download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    download += ["--require-hashes", "-r", str(LOCK), "--dest", str(ctx / "wheels")]
    download += ["--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", ABI]
    download += [a for p in PLATFORMS for a in ("--platform", p)]
    run(*download)

    # The Dockerfile's builder steps, inside the new root; then its final stage's RUN.
    pip_env = "PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1"
    install = (
        f"{pip_env} python3 -m venv /opt/venv"
        f" && {pip_env} /opt/venv/bin/pip install -q --no-index --find-links /tmp/minerguard-build/wheels"
        " --only-binary=:all: --require-hashes -r /tmp/minerguard-build/requirements.lock"
        f" && {pip_env} /opt/venv/bin/pip install -q --no-deps /tmp/minerguard-build/{wheels[0].name}"
    )
    # A clean environment inside: nothing of this machine's pip or proxy settings leaks in.
    inside = 'chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 /bin/sh -ec'
    hooks = [
        f'mkdir -p "$1/tmp/minerguard-build" && cp -a {shlex.quote(str(ctx))}/. "$1/tmp/minerguard-build/"',
        f"{inside} {shlex.quote(install)}",
        *[f"{inside} {shlex.quote(r)}" for r in config.runs],
        'rm -rf "$1/tmp/minerguard-build" "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log',
    ]
    rootfs = WORK / "rootfs.tar"
    log(f"mmdebstrap --variant=minbase {SUITE} with {', '.join(PACKAGES)}, then the virtualenv")
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet", f"--include={','.join(PACKAGES)}"]
    # As Debian's slim images: no manuals, info pages, translations or docs (the copyright files stay).
    cmd += [f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("man", "info", "doc", "locale", "lintian")]
    cmd += ["--dpkgopt=path-include=/usr/share/doc/*/copyright"]
    cmd += [f"--customize-hook={h}" for h in hooks]
    run(*cmd, SUITE, str(rootfs))

    layout = WORK / "oci"
    image = f"{layout}:minerguard"
    log("umoci: one layer and the Dockerfile's image configuration")
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", image)
    run("umoci", "raw", "add-layer", "--image", image, "--history.created_by", f"mmdebstrap {SUITE}", str(rootfs))
    args = ["umoci", "config", "--image", image, "--os", "linux", "--architecture", "amd64"]
    args += ["--config.user", config.user, "--config.workingdir", config.workdir]
    args += [a for word in config.entrypoint for a in ("--config.entrypoint", word)]
    args += [a for word in config.cmd for a in ("--config.cmd", word)]
    env = {"PATH": BASE_PATH, **config.env}
    args += [a for k, v in env.items() for a in ("--config.env", f"{k}={v}")]
    args += [a for k, v in config.labels.items() for a in ("--config.label", f"{k}={v}")]
    args += [a for p in config.exposed for a in ("--config.exposedports", p)]
    run(*args)

    DIST.mkdir(exist_ok=True)
    ref = reference()
    oci_archive, docker_archive = archives()
    log(f"skopeo: {oci_archive.name} and {docker_archive.name}, tagged {ref}")
    for path in (oci_archive, docker_archive):
        path.unlink(missing_ok=True)
    run("skopeo", "copy", "--quiet", f"oci:{image}", f"oci-archive:{oci_archive}:{ref}")
    run("skopeo", "copy", "--quiet", f"oci:{image}", f"docker-archive:{docker_archive}:{ref}")
    size = docker_archive.stat().st_size / 2**20
    log(f"built {ref} in {time.monotonic() - started:.0f} s ({size:.0f} MiB uncompressed docker-archive)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "reference", "archives"])
    args = parser.parse_args()
    if args.command == "build":
        build()
    elif args.command == "reference":
        print(reference())
    else:
        print("\n".join(str(p) for p in archives()))


if __name__ == "__main__":
    main()
