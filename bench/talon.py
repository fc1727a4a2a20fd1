"""Falco Talon, the Falco response engine, as a side-by-side contender.

:func:`build` builds Talon from the source snapshot in ``../shared/contenders/`` (the Go module
proxy does not serve it under its own path; its dependencies come from the proxy as usual) into
``~/.cache/minerguard/tools/falco-talon-<snapshot>/``, once per snapshot. Every attempt (command,
exit code, the tool's own message) is kept so the report can say exactly why Talon was not used.
Talon's code is never copied into this repository; the benchmark builds and runs it as it is.

:class:`TalonProcess` runs it on loopback against the benchmark cluster with one rule whose action
is the ``kubernetes:networkpolicy`` actionner (leader election, notifiers and telemetry off), and
:meth:`TalonProcess.post_event` feeds it a Falco event for a miner pod through its HTTP input. Talon
names the NetworkPolicy after the pod's owner (the pod itself for a bare pod, as the miners here are)
and makes it egress-only.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = Path(os.environ.get("MINERGUARD_CONTENDERS", ROOT.parent / "shared" / "contenders"))
CACHE = Path(os.environ.get("MINERGUARD_CACHE", Path.home() / ".cache" / "minerguard"))
MINER_RULE = "Detect crypto miners using the Stratum protocol"


@dataclass
class TalonBuild:
    binary: Path | None = None
    source: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why there is no binary, in the tools' own words."""
        if self.binary is not None:
            return ""
        if not self.attempts:
            return f"no falco-talon-*.tar.gz in {CONTENDERS}"
        return "; ".join(f"`{a['command']}` -> exit {a['exit']}: {a['output']}" for a in self.attempts)


def _run(args: list[str], cwd: Path, timeout: float) -> tuple[int, str]:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    try:
        res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except FileNotFoundError:
        return 127, f"{args[0]} is not installed"
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f}s"
    out = " ".join((res.stdout + res.stderr).split())
    return res.returncode, out[-400:]


def build() -> TalonBuild:
    """Build Talon from the newest source snapshot in ../shared/contenders, once per snapshot (the first build
    takes about 20 minutes and fetches its dependencies from the Go module proxy); later calls reuse it."""
    result = TalonBuild()
    archives = sorted(CONTENDERS.glob("falco-talon-*.tar.gz"))
    if not archives:
        return result
    archive = archives[-1]
    name = archive.name.removesuffix(".tar.gz")
    target, src = CACHE / "tools" / name, CACHE / "src" / name
    binary = target / "falco-talon"
    result.source = archive.name
    if not (target / ".done").exists():
        target.mkdir(parents=True, exist_ok=True)
        src.mkdir(parents=True, exist_ok=True)
        code, out = _run(["tar", "-xzf", str(archive), "-C", str(src)], src, 120)
        result.attempts.append({"command": f"tar -xzf {archive.name}", "exit": code, "output": out})
        if code != 0:
            return result
        command = ["go", "build", "-trimpath", "-o", str(binary), "."]
        code, out = _run(command, src / "falco-talon", 3600)
        result.attempts.append({"command": " ".join(command), "exit": code, "output": out})
        if code != 0 or not binary.exists():
            return result
        (target / ".done").touch()
    result.binary = binary
    return result


class TalonProcess:
    """Talon listening on a loopback port, with the networkpolicy actionner for miner events."""

    def __init__(self, binary: Path, kubeconfig: Path, workdir: Path, port: int) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        rules = self.workdir / "talon-rules.yaml"
        rules.write_text(
            "- action: Isolate miner\n  actionner: kubernetes:networkpolicy\n"
            f"- rule: Miner\n  match:\n    rules:\n      - {MINER_RULE}\n  actions:\n    - action: Isolate miner\n"
        )
        cfg = self.workdir / "talon-config.yaml"
        cfg.write_text(
            f'listen_address: "127.0.0.1"\nlisten_port: "{self.port}"\nrules_files: ["{rules}"]\n'
            f'kubeconfig: "{self.kubeconfig}"\nlog_format: text\nwatch_rules: false\n'
            "deduplication:\n  leader_election: false\nprint_all_events: false\ndefault_notifiers: []\n"
        )
        self._log = open(self.workdir / "talon.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "server", "--config", str(cfg), "--rules", str(rules)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"falco-talon exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("falco-talon did not answer on /healthz within 30s")

    def post_event(self, namespace: str, pod: str, node: str = "kwok-node-0") -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "uuid": str(uuid.uuid4()),
            "output": f"Outbound connection to a mining pool (pod={pod} ns={namespace} proc=xmrig)",
            "priority": "Critical",
            "rule": MINER_RULE,
            "time": now,
            "source": "syscall",
            "hostname": node,
            "tags": ["mitre_impact", "T1496"],
            "output_fields": {
                "k8s.ns.name": namespace,
                "k8s.pod.name": pod,
                "proc.name": "xmrig",
                "fd.sport": 3333,
                "evt.time": int(time.time() * 1e9),
            },
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/",
            data=json.dumps(event).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            r.read()

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
