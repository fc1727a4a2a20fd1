#!/usr/bin/env python3
"""Run a real, local Kubernetes control plane on loopback for tests and the demo.

The processes are the real ones, built by ``hack/tools.sh``: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, KWOK (which plays the kubelets of the
simulated nodes and serves their kubelet metrics) and Prometheus (which scrapes
KWOK through its HTTP service discovery).

    hack/cluster.py up      start everything, or reuse the cluster already running
    hack/cluster.py down    stop every process and delete the cluster's state
    hack/cluster.py status  say what runs
    hack/cluster.py restart COMPONENT   stop and start one component (fault tests)
    hack/cluster.py stop COMPONENT / start COMPONENT
    hack/cluster.py node-up     start the real node real-0 (hack/realnode.py) in a running cluster
    hack/cluster.py node-down   stop it and remove everything it made
    hack/cluster.py import-image ARCHIVE   import a docker-archive into the real node's containerd

The real node: with MINERGUARD_REAL_NODE=1 (or unset, "auto", on a machine that can run it: root,
runc, CNI plugins, socat), ``up`` configures the apiserver for it and starts it when its tools
are built (``hack/tools.sh real-node``); MINERGUARD_REAL_NODE=0 keeps the cluster KWOK-only.

State (certificates, data, logs, pid files, kubeconfig) lives in ``.cluster/``
at the top of the checkout, which git ignores. Only the standard library is used,
so the script runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realnode  # hack/ is not a package: the script's own directory

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("MINERGUARD_CLUSTER_DIR", ROOT / ".cluster"))
CACHE = Path(os.environ.get("MINERGUARD_CACHE", Path.home() / ".cache" / "minerguard"))
BIN = CACHE / "bin"
HACK = ROOT / "hack"

# Loopback ports; override with MINERGUARD_PORT_<NAME>=N.
DEFAULT_PORTS = {
    "etcd": 23790,
    "etcd_peer": 23800,
    "apiserver": 26443,
    "controller_manager": 26257,
    "scheduler": 26259,
    "kwok": 26080,
    "prometheus": 29090,
}
COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "prometheus"]
NODE_COUNT = int(os.environ.get("MINERGUARD_NODES", "3"))
SCRAPE_INTERVAL = os.environ.get("MINERGUARD_SCRAPE_INTERVAL", "2s")
ETCD_QUOTA_BYTES = int(os.environ.get("MINERGUARD_ETCD_QUOTA_BYTES", str(4 * 1024**3)))
"""etcd's space quota; past it every write fails (`mvcc: database space exceeded`) until a defragmentation."""
ETCD_COMPACTION_INTERVAL = os.environ.get("MINERGUARD_ETCD_COMPACTION_INTERVAL", "5m")
"""How often the apiserver compacts etcd's old revisions (its default, 5m). The exhaustion soak's megabyte pods
annotated at 20 Hz write ~20 MiB of revisions a second, which fills 4 GiB in about 3 minutes between compactions."""


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


class ClusterError(Exception):
    """A problem the user has to act on; the message says what."""


def ports() -> dict[str, int]:
    return {k: int(os.environ.get(f"MINERGUARD_PORT_{k.upper()}", v)) for k, v in DEFAULT_PORTS.items()}


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def pidfile(name: str) -> Path:
    return STATE_DIR / "pids" / f"{name}.pid"


def running(name: str) -> int | None:
    try:
        pid = int(pidfile(name).read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise ClusterError(f"{path} is missing: run 'hack/tools.sh build' (or 'make tools') first")
    return str(path)


# --------------------------------------------------------------------------- certificates


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(pki: Path) -> None:
    if (pki / "admin.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    log("generating certificates")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=minerguard-local-ca",
        "-keyout",
        str(pki / "ca.key"),
        "-out",
        str(pki / "ca.crt"),
    )
    ext = pki / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\n"
    )

    def signed(name: str, subj: str, extfile: Path | None) -> None:
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subj,
            "-keyout",
            str(pki / f"{name}.key"),
            "-out",
            str(pki / f"{name}.csr"),
        )
        extra = ["-extfile", str(extfile)] if extfile else []
        openssl(
            "x509",
            "-req",
            "-in",
            str(pki / f"{name}.csr"),
            "-CA",
            str(pki / "ca.crt"),
            "-CAkey",
            str(pki / "ca.key"),
            "-CAcreateserial",
            "-days",
            "3650",
            "-out",
            str(pki / f"{name}.crt"),
            *extra,
        )

    signed("apiserver", "/CN=kube-apiserver", ext)
    client_ext = pki / "client.ext"
    client_ext.write_text("extendedKeyUsage=clientAuth\n")
    signed("admin", "/O=system:masters/CN=minerguard-admin", client_ext)
    openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def write_kubeconfig(path: Path, pki: Path, port: int) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: minerguard-local
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {pki / "ca.crt"}
users:
- name: admin
  user:
    client-certificate: {pki / "admin.crt"}
    client-key: {pki / "admin.key"}
contexts:
- name: minerguard-local
  context: {{cluster: minerguard-local, user: admin}}
current-context: minerguard-local
"""
    )


# --------------------------------------------------------------------------- processes


def command_for(name: str, p: dict[str, int]) -> list[str]:
    pki = STATE_DIR / "pki"
    kubeconfig = str(STATE_DIR / "kubeconfig")
    if name == "etcd":
        return [
            tool("etcd"),
            "--name",
            "minerguard",
            "--data-dir",
            str(STATE_DIR / "etcd"),
            "--listen-client-urls",
            f"http://127.0.0.1:{p['etcd']}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{p['etcd']}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{p['etcd_peer']}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{p['etcd_peer']}",
            "--initial-cluster",
            f"minerguard=http://127.0.0.1:{p['etcd_peer']}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes",
            str(ETCD_QUOTA_BYTES),
            "--log-level",
            "warn",
        ]
    if name == "kube-apiserver":
        return [
            tool("kube-apiserver"),
            "--etcd-servers",
            f"http://127.0.0.1:{p['etcd']}",
            "--etcd-compaction-interval",
            ETCD_COMPACTION_INTERVAL,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(p["apiserver"]),
            "--tls-cert-file",
            str(pki / "apiserver.crt"),
            "--tls-private-key-file",
            str(pki / "apiserver.key"),
            "--client-ca-file",
            str(pki / "ca.crt"),
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file",
            str(pki / "sa.pub"),
            "--service-account-signing-key-file",
            str(pki / "sa.key"),
            "--service-cluster-ip-range",
            "10.96.0.0/16",
            "--authorization-mode",
            "Node,RBAC",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--max-requests-inflight",
            "2000",
            "--max-mutating-requests-inflight",
            "1000",
            "--event-ttl",
            "24h",
            "--profiling=false",
            "-v",
            "1",
            *(real_node().apiserver_args() if real_node_mode() else []),
        ]
    if name == "kube-controller-manager":
        return [
            tool("kube-controller-manager"),
            "--kubeconfig",
            kubeconfig,
            "--authentication-kubeconfig",
            kubeconfig,
            "--authorization-kubeconfig",
            kubeconfig,
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(p["controller_manager"]),
            "--service-account-private-key-file",
            str(pki / "sa.key"),
            "--root-ca-file",
            str(pki / "ca.crt"),
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--controllers",
            "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
            "--kube-api-qps",
            "500",
            "--kube-api-burst",
            "1000",
            "--concurrent-replicaset-syncs",
            "10",
            "-v",
            "1",
        ]
    if name == "kube-scheduler":
        return [
            tool("kube-scheduler"),
            "--kubeconfig",
            kubeconfig,
            "--authentication-kubeconfig",
            kubeconfig,
            "--authorization-kubeconfig",
            kubeconfig,
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(p["scheduler"]),
            "--leader-elect=false",
            "-v",
            "1",
        ]
    if name == "kwok":
        return [
            tool("kwok"),
            "--kubeconfig",
            kubeconfig,
            "--config",
            str(STATE_DIR / "kwok.yaml"),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector",
            "kwok.x-k8s.io/node=fake",
            "--server-address",
            f"127.0.0.1:{p['kwok']}",
            "--node-ip",
            "10.244.0.1",
            "--cidr",
            "10.244.0.0/16",
            "--node-lease-duration-seconds",
            "40",
        ]
    if name == "prometheus":
        return [
            tool("prometheus"),
            "--config.file",
            str(STATE_DIR / "prometheus.yml"),
            "--storage.tsdb.path",
            str(STATE_DIR / "prometheus"),
            "--web.listen-address",
            f"127.0.0.1:{p['prometheus']}",
            "--web.enable-lifecycle",
            "--log.level",
            "warn",
        ]
    raise ClusterError(f"unknown component {name!r}; one of {', '.join(COMPONENTS)}")


PORT_OF = {
    "etcd": ["etcd", "etcd_peer"],
    "kube-apiserver": ["apiserver"],
    "kube-controller-manager": ["controller_manager"],
    "kube-scheduler": ["scheduler"],
    "kwok": ["kwok"],
    "prometheus": ["prometheus"],
}


def start(name: str, p: dict[str, int]) -> None:
    if running(name):
        return
    for key in PORT_OF.get(name, []):
        if not port_free(p[key]):
            raise ClusterError(
                f"port {p[key]} on 127.0.0.1 (needed by {name}) is already taken by another process; "
                f"free it or set MINERGUARD_PORT_{key.upper()} to another port"
            )
    cmd = real_node().command(name, p["apiserver"]) if name in realnode.COMPONENTS else command_for(name, p)
    logs = STATE_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "pids").mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=STATE_DIR
        )
    pidfile(name).write_text(str(proc.pid))


def signal_process(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads, or only ``pid`` when it leads none (a pid file
    written by someone else): a missing group must never leave stop() waiting for nothing."""
    try:
        os.killpg(pid, sig)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop(name: str, timeout: float = 15.0) -> None:
    pid = running(name)
    if pid is None:
        pidfile(name).unlink(missing_ok=True)
        return
    signal_process(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        signal_process(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    pidfile(name).unlink(missing_ok=True)


def wait_for(what: str, check: Any, timeout: float, component: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if component and not running(component):
            tail = (STATE_DIR / "logs" / f"{component}.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"{component} exited while starting; last log lines:\n{tail}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
        time.sleep(0.2)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what} ({last})")


def https_get(url: str) -> bytes:
    pki = STATE_DIR / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(url, context=ctx, timeout=3) as r:
        return bytes(r.read())


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=3) as r:
        return bytes(r.read())


def kubectl(*args: str, stdin: str | None = None) -> str:
    res = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(STATE_DIR / "kubeconfig"), *args],
        input=stdin,
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


def wait_ready(name: str, p: dict[str, int]) -> None:
    if name == "etcd":
        wait_for("etcd", lambda: b"true" in http_get(f"http://127.0.0.1:{p['etcd']}/health"), 60, name)
    elif name == "kube-apiserver":
        wait_for(
            "kube-apiserver /readyz",
            lambda: https_get(f"https://127.0.0.1:{p['apiserver']}/readyz") == b"ok",
            120,
            name,
        )
    elif name == "kwok":
        wait_for("kwok", lambda: http_get(f"http://127.0.0.1:{p['kwok']}/healthz") is not None, 60, name)
    elif name == "prometheus":
        wait_for("prometheus", lambda: http_get(f"http://127.0.0.1:{p['prometheus']}/-/ready") is not None, 60, name)
    else:
        wait_for(name, lambda: running(name) is not None, 10, name)


def write_configs(p: dict[str, int]) -> None:
    stages = BIN / "stages.yaml"
    if not stages.exists():
        raise ClusterError(f"{stages} is missing: run 'hack/tools.sh build' first")
    (STATE_DIR / "kwok.yaml").write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n"
        "  podPlayStageParallelism: 16\n  nodePlayStageParallelism: 4\n  nodeLeaseParallelism: 4\n"
        "  podsOnNodeSyncParallelism: 4\n  enablePodsOnNodeSyncListPager: true\n"
        + stages.read_text()
        + "\n---\n"
        + (HACK / "kwok" / "metrics.yaml").read_text()
    )
    tenant_targets = STATE_DIR / "tenant-targets.json"
    if not tenant_targets.exists():
        tenant_targets.write_text("[]\n")
    (STATE_DIR / "prometheus.yml").write_text(
        f"""global:
  scrape_interval: {SCRAPE_INTERVAL}
  scrape_timeout: {SCRAPE_INTERVAL}
  evaluation_interval: {SCRAPE_INTERVAL}
scrape_configs:
- job_name: kubelet
  # KWOK lists one target per simulated node and kubelet metrics endpoint. Labelled like the
  # kubelet job of kube-prometheus-stack: job="kubelet", metrics_path="/metrics/resource".
  http_sd_configs:
  - url: http://127.0.0.1:{p["kwok"]}/discovery/prometheus
    refresh_interval: 5s
  relabel_configs:
  - source_labels: [__metrics_path__]
    regex: /metrics/nodes/([^/]+)/.*
    target_label: node
  - source_labels: [__metrics_path__]
    regex: /metrics/nodes/[^/]+(/.*)
    target_label: metrics_path
- job_name: tenant-pods
  # Stands for the targets tenants make Prometheus scrape (annotated pods, PodMonitors): the
  # tests list their own endpoints in this file to play a tenant exposing forged series.
  file_sd_configs:
  - files: [{STATE_DIR / "tenant-targets.json"}]
    refresh_interval: 5s
- job_name: minerguard
  # Operators run as local processes by tests and the demo: each writes its /metrics address
  # into a file of {STATE_DIR / "prometheus-targets"} (Prometheus' file discovery).
  file_sd_configs:
  - files: ["{STATE_DIR / "prometheus-targets"}/*.json"]
    refresh_interval: 5s
"""
    )
    if real_node_mode():
        with open(STATE_DIR / "prometheus.yml", "a") as f:
            f.write(real_node_scrape(p))
    (STATE_DIR / "prometheus-targets").mkdir(parents=True, exist_ok=True)


def real_node_scrape(p: dict[str, int]) -> str:
    """The real kubelet's /metrics/resource, through the apiserver's node proxy, labelled like KWOK's."""
    pki = STATE_DIR / "pki"
    return f"""- job_name: kubelet-real-node
  # The kubelet of {realnode.NODE}, read through the apiserver (its egress goes into the node's
  # namespace): the same job, node and metrics_path labels as the KWOK targets above, so the
  # operator's PromQL is the same for simulated and real nodes.
  scheme: https
  metrics_path: /api/v1/nodes/{realnode.NODE}/proxy/metrics/resource
  tls_config:
    ca_file: {pki / "ca.crt"}
    cert_file: {pki / "admin.crt"}
    key_file: {pki / "admin.key"}
  static_configs:
  - targets: ["127.0.0.1:{p["apiserver"]}"]
    labels: {{node: {realnode.NODE}, metrics_path: /metrics/resource}}
  relabel_configs:
  - target_label: job
    replacement: kubelet
  # Its node CPU is the whole shared machine's (other builds, other clusters), not a node's:
  # only the containers' series are kept.
  metric_relabel_configs:
  - source_labels: [__name__]
    regex: node_.*
    action: drop
"""


NODE_TEMPLATE = """apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    {role_label}
spec:
  {taints}
status:
  allocatable: {{cpu: "8", memory: 32Gi, pods: "250"}}
  capacity: {{cpu: "8", memory: 32Gi, pods: "250"}}
"""


def node_manifest(name: str, control_plane: bool = False) -> str:
    return NODE_TEMPLATE.format(
        name=name,
        role_label='node-role.kubernetes.io/control-plane: ""'
        if control_plane
        else 'node-role.kubernetes.io/worker: ""',
        taints="taints: [{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]" if control_plane else "{}",
    )


def ensure_nodes(count: int) -> None:
    docs = [node_manifest("kwok-control-plane", control_plane=True)]
    docs += [node_manifest(f"kwok-node-{i}") for i in range(count)]
    kubectl("apply", "-f", "-", stdin="\n---\n".join(docs))
    kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")


def cluster_alive() -> bool:
    return all(running(c) for c in COMPONENTS)


# --------------------------------------------------------------------------- the real node

NODE_TOOLS = ("kubelet", "containerd", "ctr", "containerd-shim-runc-v2", "kube-router", "pause")
MODE_FILE = "real-node-mode"


def real_node() -> realnode.Node:
    return realnode.Node(STATE_DIR, BIN)


def real_node_mode() -> bool:
    """Whether this cluster's apiserver was set up for the real node (decided by ``up``)."""
    return (STATE_DIR / MODE_FILE).exists()


def decide_real_node_mode() -> bool:
    want = os.environ.get("MINERGUARD_REAL_NODE", "auto").strip().lower()
    if want in ("0", "off", "false", "no"):
        log("real node: off (MINERGUARD_REAL_NODE=0); KWOK nodes only")
        return False
    problem = realnode.host_problem()
    if problem:
        if want in ("1", "on", "true", "yes"):
            raise ClusterError(f"MINERGUARD_REAL_NODE=1, but this machine cannot run the real node: {problem}")
        log(f"real node: off, this machine cannot run it ({problem}); KWOK nodes only")
        return False
    return True


def node_tools_missing() -> list[str]:
    return [t for t in NODE_TOOLS if not (BIN / t).exists()]


def node_up(p: dict[str, int]) -> None:
    if not real_node_mode():
        raise ClusterError(
            "this cluster was started without the real node (MINERGUARD_REAL_NODE=0, or the machine could not "
            "run it): make cluster-down, then make cluster-up"
        )
    problem = realnode.host_problem()
    if problem:
        raise ClusterError(f"this machine cannot run the real node: {problem}")
    missing = node_tools_missing()
    if missing:
        raise ClusterError(f"the real node's tools are missing ({', '.join(missing)}): run 'hack/tools.sh real-node'")
    if all(running(c) for c in realnode.COMPONENTS):
        return
    node = real_node()
    t0 = time.monotonic()
    log(f"starting the real node {realnode.NODE}")
    try:
        node.write_config(STATE_DIR / "pki")
        if not running("node-ns"):
            node.sweep()
            node.prepare_host()
        for name in realnode.COMPONENTS:
            if running(name):
                continue
            start(name, p)
            wait_for(f"{name} of the real node", lambda n=name: node.ready(n), 60, name)
            if name == "node-ns":
                node.record_namespaces()
            elif name == "containerd":
                node.import_pause()
            elif name == "kubelet":
                wait_for(f"node {realnode.NODE} registered", lambda: kubectl("get", "node", realnode.NODE), 90, name)
                spec = {"spec": {"podCIDR": realnode.POD_CIDR, "podCIDRs": [realnode.POD_CIDR]}}
                kubectl("patch", "node", realnode.NODE, "--type", "merge", "-p", json.dumps(spec))
                kubectl("label", "node", realnode.NODE, "node-role.kubernetes.io/worker=", "--overwrite")
        wait_for(
            f"node {realnode.NODE} Ready",
            lambda: kubectl(
                "get", "node", realnode.NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
            ).strip()
            == "True",
            120,
            "kubelet",
        )
    except (ClusterError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
        node_down()
        raise ClusterError(f"the real node did not start: {exc}") from exc
    log(f"real node {realnode.NODE} ready in {time.monotonic() - t0:.1f}s")


def node_down() -> None:
    """Stop the real node's processes and remove everything it made (processes in its namespaces,
    cgroups, mounts, its run directory); its network namespace, veths and iptables/ipset state
    (kube-router's chains) go with the last process in it."""
    node = real_node()
    for name in reversed(realnode.COMPONENTS):
        if running(name):
            log(f"stopping {name}")
        stop(name, timeout=10)
    try:
        node.sweep()
    except RuntimeError as exc:
        raise ClusterError(str(exc)) from exc


def up(start_node: bool = True) -> None:
    p = ports()
    if cluster_alive():
        log(f"a cluster is already running (state in {STATE_DIR}); reusing it")
        print_usage(p)
        return
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    saved = STATE_DIR / "ports.json"
    if saved.exists():
        p = {**p, **json.loads(saved.read_text())}
    saved.write_text(json.dumps(p))
    mode = decide_real_node_mode()
    (STATE_DIR / MODE_FILE).unlink(missing_ok=True)
    if mode:
        real_node().write_apiserver_config()
        (STATE_DIR / MODE_FILE).write_text("on\n")
    make_certs(STATE_DIR / "pki")
    write_kubeconfig(STATE_DIR / "kubeconfig", STATE_DIR / "pki", p["apiserver"])
    write_configs(p)
    t0 = time.monotonic()
    try:
        for name in COMPONENTS:
            if running(name):
                continue
            log(f"starting {name}")
            start(name, p)
            wait_ready(name, p)
        ensure_nodes(NODE_COUNT)
        kubectl("wait", "--for=create", "serviceaccount/default", "-n", "default", "--timeout=60s")
    except ClusterError:
        for name in reversed(COMPONENTS):
            stop(name)
        raise
    log(f"cluster ready in {time.monotonic() - t0:.1f}s")
    if mode and node_tools_missing():
        log(
            "real node: its tools are not built yet (hack/tools.sh real-node builds them, about 20 minutes the "
            "first time); then 'hack/cluster.py node-up' adds it"
        )
    elif mode and start_node:
        node_up(p)
    elif mode:
        log("real node: ready to start ('hack/cluster.py node-up')")
    print_usage(p)


def print_usage(p: dict[str, int]) -> None:
    kc = STATE_DIR / "kubeconfig"
    print(
        f"""
Local control plane is up (kube-apiserver https://127.0.0.1:{p["apiserver"]}, Prometheus http://127.0.0.1:{p["prometheus"]}).
Use it with:
    export KUBECONFIG={kc}
    {BIN / "kubectl"} get nodes
Stop it with: make cluster-down
""".rstrip()
    )


def down() -> None:
    if real_node_mode() or any(running(c) for c in realnode.COMPONENTS):
        node_down()
    for name in reversed(COMPONENTS):
        if running(name):
            log(f"stopping {name}")
        stop(name)
    if STATE_DIR.exists():
        shutil.rmtree(STATE_DIR)
    log("cluster stopped and its state removed")


def status() -> int:
    p = ports()
    alive = 0
    for name in COMPONENTS:
        pid = running(name)
        alive += bool(pid)
        print(f"{name:26} {f'running (pid {pid})' if pid else 'stopped'}")
    if real_node_mode():
        for name in realnode.COMPONENTS:
            pid = running(name)
            print(f"{name:26} {f'running (pid {pid})' if pid else 'stopped'} (real node {realnode.NODE})")
    if alive:
        print_usage(p)
    return 0 if alive == len(COMPONENTS) else 1


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "action", choices=["up", "down", "status", "start", "stop", "restart", "node-up", "node-down", "import-image"]
    )
    ap.add_argument("component", nargs="?")
    ap.add_argument(
        "--defer-node",
        action="store_true",
        help="up: set the cluster up for the real node but start it later (node-up); the e2e suite does",
    )
    args = ap.parse_args(argv)
    try:
        if args.action == "up":
            up(start_node=not args.defer_node)
        elif args.action == "down":
            down()
        elif args.action == "status":
            return status()
        elif args.action == "node-down":
            node_down()
        elif args.action == "import-image":
            if not args.component:
                raise ClusterError("name a docker-archive to import")
            real_node().import_image(Path(args.component))
        else:
            saved = STATE_DIR / "ports.json"
            p = {**ports(), **json.loads(saved.read_text())} if saved.exists() else ports()
            if args.action == "node-up":
                node_up(p)
                return 0
            if args.component not in COMPONENTS + realnode.COMPONENTS:
                raise ClusterError(f"name a component: {', '.join(COMPONENTS + realnode.COMPONENTS)}")
            if args.action in ("stop", "restart"):
                stop(args.component)
            if args.action in ("start", "restart"):
                start(args.component, p)
                if args.component in realnode.COMPONENTS:
                    node = real_node()
                    wait_for(args.component, lambda: node.ready(args.component), 60, args.component)
                else:
                    wait_ready(args.component, p)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
