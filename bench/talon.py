"""Falco Talon, the Falco response engine, as the side-by-side contender (when it can be built).

:func:`build` asks the Go module proxy for Talon's versions under the module paths it has
had, and builds the newest with ``GOBIN=... go install`` into
``~/.cache/minerguard/tools/falco-talon-<version>/``. Every attempt (command, exit code,
the tool's own message) is kept so the report can say exactly why Talon was not used.

:class:`TalonProcess` runs it against the benchmark cluster with one rule whose action is
the ``kubernetes:networkpolicy`` actionner, and :meth:`TalonProcess.post_event` feeds it a
Falco event for a miner pod through its HTTP input. Talon names the NetworkPolicy after
the pod's owner (the pod itself for a bare pod). This runner follows Talon's documented
configuration; it has not been exercised here, because no build was possible (see
docs/performance.md).
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

MODULES = ["github.com/falcosecurity/falco-talon", "github.com/falco-talon/falco-talon", "github.com/Issif/falco-talon"]
CACHE = Path(os.environ.get("MINERGUARD_CACHE", Path.home() / ".cache" / "minerguard")) / "tools"
MINER_RULE = "Detect crypto miners using the Stratum protocol"


@dataclass
class TalonBuild:
    binary: Path | None = None
    module: str = ""
    version: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why there is no binary, in the tools' own words."""
        if self.binary is not None:
            return ""
        return "; ".join(f"`{a['command']}` -> exit {a['exit']}: {a['output']}" for a in self.attempts)


def _go(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    try:
        res = subprocess.run(["go", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd="/tmp")
    except FileNotFoundError:
        return 127, "go is not installed"
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f}s"
    out = " ".join((res.stdout + res.stderr).split())
    return res.returncode, out[-400:]


def build() -> TalonBuild:
    result = TalonBuild()
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    for module in MODULES:
        code, out = _go(["list", "-m", "-versions", module], env, 90)
        result.attempts.append({"command": f"go list -m -versions {module}", "exit": code, "output": out})
        versions = out.split()[1:] if code == 0 else []
        if not versions:
            continue
        version = versions[-1]
        target = CACHE / f"falco-talon-{version}"
        binary = target / "falco-talon"
        if not (target / ".done").exists():
            target.mkdir(parents=True, exist_ok=True)
            code, out = _go(["install", "-trimpath", f"{module}@{version}"], {**env, "GOBIN": str(target)}, 1200)
            result.attempts.append(
                {"command": f"GOBIN={target} go install {module}@{version}", "exit": code, "output": out}
            )
            if code != 0 or not binary.exists():
                continue
            (target / ".done").touch()
        result.binary, result.module, result.version = binary, module, version
        break
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
            "deduplication:\n  enabled: false\ndefault_notifiers: []\n"
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
