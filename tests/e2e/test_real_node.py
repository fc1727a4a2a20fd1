"""The real node real-0 is a real Kubernetes node, and leaves nothing behind on the host.

It runs a pod of the operator's image (no registry: imported, ``imagePullPolicy: Never``); the
apiserver reaches its kubelet (``kubectl logs`` and ``exec`` through the egress selector); only
pods that tolerate its taint land there; and ``hack/cluster.py node-down`` removes every process,
cgroup, mount and namespace it made, without ever changing a kernel setting of the host.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.helpers import CLUSTER_DIR, ROOT, eventually, kubectl
from tests.e2e.realnode import POD_CIDR, RealNode, ensure_real_node

pytestmark = pytest.mark.realnode

# Host settings the kubelet would change without protectKernelDefaults, and ones a node's
# network could: none may differ after the node ran.
HOST_SYSCTLS = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
]


def host_state() -> dict[str, object]:
    sysctls = {k: Path("/proc/sys", k).read_text().strip() for k in HOST_SYSCTLS if Path("/proc/sys", k).exists()}
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {
        "sysctls": sysctls,
        "links": sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()),
        "kube_chains": sorted(line for line in rules.splitlines() if "KUBE-" in line),
    }


def test_a_pod_runs_on_the_real_node_and_the_apiserver_reaches_its_kubelet(
    real_node: RealNode, core: client.CoreV1Api, namespace: str
) -> None:
    node = core.read_node(real_node.name)
    assert any(t.key == "minerguard.io/real-node" and t.effect == "NoSchedule" for t in node.spec.taints or [])
    assert node.spec.pod_cidr == POD_CIDR
    script = "import socket,time; print('hello from', socket.gethostname(), flush=True); time.sleep(3600)"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": real_node.pod_spec([{"name": "hello", "command": ["python3", "-c", script]}]),
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    running = eventually(
        lambda: (p := core.read_namespaced_pod("hello", namespace)).status.phase == "Running" and p, 120, "pod Running"
    )
    assert running.spec.node_name == real_node.name
    assert ipaddress.ip_address(running.status.pod_ip) in ipaddress.ip_network(POD_CIDR)
    # The apiserver reaches the kubelet only through the egress selector (into the node's namespace).
    eventually(lambda: "hello from hello" in kubectl("logs", "-n", namespace, "hello").stdout, 30, "kubectl logs")
    assert kubectl("exec", "-n", namespace, "hello", "--", "python3", "-c", "print(6*7)").stdout.strip() == "42"
    # A pod that does not tolerate the taint never lands on the real node.
    plain = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": namespace},
             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    kubectl("apply", "-f", "-", stdin=json.dumps(plain))
    placed = eventually(lambda: core.read_namespaced_pod("plain", namespace).spec.node_name, 60, "plain scheduled")
    assert placed.startswith("kwok-")


def test_node_down_leaves_nothing_and_host_settings_never_change(real_node: RealNode) -> None:
    hack = ROOT / "hack"
    before = host_state()
    node_json = json.loads((CLUSTER_DIR / "real-node" / "node.json").read_text())
    run_dir = real_node.impl.run
    cgroup = real_node.impl.cgroup
    assert Path(f"/proc/{real_node.impl.holder_pid()}").exists()
    # The kubelet (protectKernelDefaults) reads the values it wants inside the node's mount namespace only.
    assert real_node.run_in_netns("cat", "/proc/sys/kernel/panic").stdout.strip() == "10"
    down = subprocess.run(
        [sys.executable, str(hack / "cluster.py"), "node-down"], capture_output=True, text=True, timeout=120
    )
    assert down.returncode == 0, down.stderr
    try:
        after = host_state()
        assert after == before
        assert not run_dir.exists()
        assert not any(Path("/sys/fs/cgroup").glob(f"*/{cgroup}"))
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(run_dir) not in mounts and str(CLUSTER_DIR / "real-node") not in mounts
        leftovers = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if os.stat(proc / "ns" / "net").st_ino == node_json["netns"]:
                        leftovers.append(proc.name)
                except OSError:
                    pass
        assert leftovers == [], "processes left in the node's network namespace"
    finally:
        # The session's node comes back for the tests after this one.
        ensure_real_node()
