"""The real worker node ``real-0`` of the local cluster (``hack/cluster.py``).

Beside the KWOK nodes, which run nothing, ``real-0`` runs real pods: a kubelet, containerd with
Debian's runc and CNI plugins, and kube-router's firewall controller enforcing NetworkPolicy.
All of it lives in one network namespace and one mount namespace that this module creates
(a holder process made by ``unshare --net --mount``; every other node process joins it with
``nsenter``), so:

* pod traffic never leaves that namespace: it has a loopback, the node's address
  ``10.88.1.1`` and the pods' ``10.88.0.0/24`` (CNI ``ptp``), and no route anywhere else;
* the node's mounts (pod volumes, container root filesystems, the pods' network namespaces)
  and its iptables/ipset state (kube-router's chains) exist only in those namespaces and
  vanish with them;
* the kubelet sees the kernel settings it wants (``protectKernelDefaults: true``) through
  files bind-mounted over ``/proc/sys`` inside its mount namespace: it never changes the host's.

The control plane stays on the host's loopback. Two bridges over UNIX sockets join them:

* node → apiserver: ``socat`` listens on ``:6443`` inside the namespace and forwards over
  ``api.sock`` to a host ``socat`` that connects to the apiserver on ``127.0.0.1``; pods reach
  it as the ``kubernetes`` Service (``10.96.0.1:443``, DNAT inside the namespace);
* apiserver → node (``kubectl logs/exec``, the kubelet's metrics through the apiserver proxy):
  the apiserver's egress selector sends HTTP CONNECT over ``egress.sock`` to
  ``hack/realnode_egress.py``, which connects inside the namespace only.

Names are derived from the cluster's state directory, so several clusters (each with its own
ports) run their real nodes side by side. ``sweep`` removes everything the node made.
Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

NODE = "real-0"
POD_CIDR = "10.88.0.0/24"
NODE_IP = "10.88.1.1"
NETNS_RANGE = "10.88.0.0/16"
SERVICE_IP = "10.96.0.1"
NS_API_PORT = 6443
PAUSE_IMAGE = "minerguard.local/pause:1"
TAINT = "minerguard.io/real-node=true:NoSchedule"
LABEL = "minerguard.io/real-node"
# The node's processes, in start order; hack/cluster.py keeps a pid file for each.
COMPONENTS = ["node-ns", "node-api-host", "node-api-ns", "node-egress", "containerd", "kubelet", "kube-router"]
# What protectKernelDefaults makes the kubelet check (k8s.io/component-helpers/node/util/sysctl).
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
# Host paths a kubelet or containerd writes to whatever their configuration says; inside the
# node's mount namespace each is a bind mount of a directory of the node's own.
PRIVATE_DIRS = ["/var/lib/cni", "/var/log/containers", "/run/containerd", "/var/lib/kubelet"]
CGROUP_FS = Path("/sys/fs/cgroup")


class Node:
    """Paths, names and commands of one cluster's real node."""

    def __init__(self, state_dir: Path, bin_dir: Path) -> None:
        self.state = state_dir
        self.bin = bin_dir
        self.dir = state_dir / "real-node"
        self.id = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
        # Short: UNIX socket paths have a 108-byte limit.
        self.run = Path("/run/minerguard") / self.id
        self.cgroup = f"minerguard-{self.id}"
        self.info_file = self.dir / "node.json"

    # ------------------------------------------------------------------ configuration

    def apiserver_args(self) -> list[str]:
        pki = self.state / "pki"
        return [
            "--egress-selector-config-file",
            str(self.state / "egress-selector.yaml"),
            "--kubelet-client-certificate",
            str(pki / "admin.crt"),
            "--kubelet-client-key",
            str(pki / "admin.key"),
            "--kubelet-preferred-address-types",
            "InternalIP",
        ]

    def write_apiserver_config(self) -> None:
        (self.state / "egress-selector.yaml").write_text(
            "apiVersion: apiserver.k8s.io/v1beta1\nkind: EgressSelectorConfiguration\negressSelections:\n"
            "- name: cluster\n  connection:\n    proxyProtocol: HTTPConnect\n    transport:\n"
            f"      uds:\n        udsName: {self.run / 'egress.sock'}\n"
        )

    def write_config(self, pki: Path) -> None:
        """Certificates, kubeconfigs, containerd, CNI and kubelet configuration of the node."""
        d = self.dir
        for sub in ("kubelet", "containerd", "cni", "pod-logs", "certs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        node_crt = pki / "node-real-0.crt"
        if not node_crt.exists():
            _sign_client(pki, "node-real-0", f"/O=system:nodes/CN=system:node:{NODE}")
        server = f"https://127.0.0.1:{NS_API_PORT}"
        _kubeconfig(d / "kubelet.kubeconfig", server, pki / "ca.crt", node_crt, pki / "node-real-0.key")
        _kubeconfig(d / "admin.kubeconfig", server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
        (d / "cni" / "10-minerguard.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "minerguard",
                    "plugins": [
                        {
                            "type": "ptp",
                            "ipMasq": False,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.run / "cni-ipam"),
                            },
                        }
                    ],
                },
                indent=1,
            )
        )
        (d / "containerd.toml").write_text(self._containerd_config())
        (d / "kubelet.yaml").write_text(self._kubelet_config(pki))

    def _containerd_config(self) -> str:
        runc = shutil.which("runc") or "/usr/sbin/runc"
        return f"""version = 3
root = "{self.dir / "containerd"}"
state = "{self.run / "containerd"}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.tracing",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "{self.run / "containerd.sock"}"

[ttrpc]
  address = "{self.run / "containerd.sock.ttrpc"}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.dir / "containerd-opt"}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # Never below containerd's own OOM score: lowering it needs CAP_SYS_RESOURCE, which a sandboxed
  # root may lack (the kubelet asks -998 for every pod sandbox).
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{self.run / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{self.dir / "cni"}"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""

    def _kubelet_config(self, pki: Path) -> str:
        return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1: the kubelet warns and runs.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{self.cgroup}
failSwapOn: false
# Never change the host's kernel settings (see KUBELET_SYSCTLS in hack/realnode.py).
protectKernelDefaults: true
makeIPTablesUtilChains: false
containerRuntimeEndpoint: unix://{self.run / "containerd.sock"}
address: 0.0.0.0
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podCIDR: {POD_CIDR}
podLogsDir: {self.dir / "pod-logs"}
resolvConf: ""
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki / "ca.crt"}}}
authorization:
  mode: Webhook
# Images are imported, never pulled: the kubelet must never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}}
serializeImagePulls: false
registerNode: true
registerWithTaints:
- {{key: {TAINT.split("=")[0]}, value: "true", effect: NoSchedule}}
shutdownGracePeriod: 0s
"""

    # ------------------------------------------------------------------ processes

    def holder_pid(self) -> int:
        return int((self.state / "pids" / "node-ns.pid").read_text())

    def _enter(self, *cmd: str) -> list[str]:
        return ["nsenter", "--target", str(self.holder_pid()), "--net", "--mount", "--", *cmd]

    def command(self, name: str, apiserver_port: int) -> list[str]:
        if name == "node-ns":
            return ["unshare", "--net", "--mount", "--propagation", "slave", "--", "sh", "-ec", self._setup_script()]
        if name == "node-api-host":
            return [
                "socat",
                f"UNIX-LISTEN:{self.run / 'api.sock'},fork,unlink-early,mode=600",
                f"TCP:127.0.0.1:{apiserver_port}",
            ]
        if name == "node-api-ns":
            return self._enter(
                "socat",
                f"TCP-LISTEN:{NS_API_PORT},bind=0.0.0.0,fork,reuseaddr",
                f"UNIX-CONNECT:{self.run / 'api.sock'}",
            )
        if name == "node-egress":
            script = str(Path(__file__).resolve().parent / "realnode_egress.py")
            return self._enter("python3", script, "--socket", str(self.run / "egress.sock"), "--allow", NETNS_RANGE)
        if name == "containerd":
            return self._enter(
                "env",
                f"PATH={self.bin}:/usr/sbin:/usr/bin:/sbin:/bin",
                str(self.bin / "containerd"),
                "--config",
                str(self.dir / "containerd.toml"),
                "--log-level",
                "warn",
            )
        if name == "kubelet":
            return self._enter(
                "env",
                f"PATH={self.bin}:/usr/sbin:/usr/bin:/sbin:/bin",
                str(self.bin / "kubelet"),
                "--config",
                str(self.dir / "kubelet.yaml"),
                "--kubeconfig",
                str(self.dir / "kubelet.kubeconfig"),
                "--root-dir",
                str(self.dir / "kubelet"),
                "--cert-dir",
                str(self.dir / "certs"),
                "--hostname-override",
                NODE,
                "--node-ip",
                NODE_IP,
                "--node-labels",
                f"{LABEL}=true,type=real",
                "-v",
                "1",
            )
        if name == "kube-router":
            return self._enter(
                "env",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                str(self.bin / "kube-router"),
                "--kubeconfig",
                str(self.dir / "admin.kubeconfig"),
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-ipv6=false",
                "--hostname-override",
                NODE,
                "--health-port",
                "20244",
                "--metrics-port",
                "0",
                "-v",
                "1",
            )
        raise ValueError(name)

    def _setup_script(self) -> str:
        """The holder's start: the namespace's addresses, the Service DNAT, the private mounts, then sleep."""
        lines = [
            "ip link set lo up",
            f"ip addr add {NODE_IP}/32 dev lo",
            f"iptables -t nat -A PREROUTING -d {SERVICE_IP}/32 -p tcp --dport 443 "
            f"-j DNAT --to-destination {NODE_IP}:{NS_API_PORT}",
            f"iptables -t nat -A OUTPUT -d {SERVICE_IP}/32 -p tcp --dport 443 "
            f"-j DNAT --to-destination {NODE_IP}:{NS_API_PORT}",
        ]
        for key, value in KUBELET_SYSCTLS.items():
            f = self.run / "sysctl" / key.replace("/", "_")
            lines.append(f"printf '%s\\n' {value} > {f} && mount --bind {f} /proc/sys/{key}")
        for i, path in enumerate(PRIVATE_DIRS):
            lines.append(f"mount --bind {self.run / 'private' / str(i)} {path}")
        lines.append(f"touch {self.run / 'ns-ready'}")
        lines.append("exec sleep infinity")
        return "\n".join(lines)

    def prepare_host(self) -> None:
        """What must exist before the holder starts: the run directory, the cgroup root, mount points."""
        for sub in ("sysctl", "containerd", "runc", "cni-ipam"):
            (self.run / sub).mkdir(parents=True, exist_ok=True)
        (self.run / "ns-ready").unlink(missing_ok=True)
        created: list[str] = []
        for i, path in enumerate(PRIVATE_DIRS):
            (self.run / "private" / str(i)).mkdir(parents=True, exist_ok=True)
            if not Path(path).exists():
                Path(path).mkdir(parents=True)
                created.append(path)
        for hierarchy in self._hierarchies():
            cg = hierarchy / self.cgroup
            cg.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (cg / f).write_text((hierarchy / f).read_text())
        info = self.info()
        info["created_dirs"] = sorted(set(info.get("created_dirs", [])) | set(created))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.info_file.write_text(json.dumps(info))

    def record_namespaces(self) -> None:
        pid = self.holder_pid()
        info = self.info()
        info["netns"] = os.stat(f"/proc/{pid}/ns/net").st_ino
        info["mntns"] = os.stat(f"/proc/{pid}/ns/mnt").st_ino
        self.info_file.write_text(json.dumps(info))

    def info(self) -> dict[str, object]:
        try:
            data: dict[str, object] = json.loads(self.info_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def ready(self, name: str) -> bool:
        if name == "node-ns":
            return (self.run / "ns-ready").exists()
        if name == "node-api-host":
            return (self.run / "api.sock").exists()
        if name == "node-egress":
            return (self.run / "egress.sock").exists()
        if name == "containerd":
            return self.ctr("version").returncode == 0
        return True

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "ctr"), "--address", str(self.run / "containerd.sock"), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def exec_in(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node's network namespace (tests probe the pods from there)."""
        return subprocess.run(self._enter(*cmd), capture_output=True, text=True, timeout=timeout)

    # ------------------------------------------------------------------ images

    def import_image(self, archive: Path) -> str:
        res = self.ctr("images", "import", "--no-unpack=false", str(archive))
        if res.returncode != 0:
            res = self.ctr("images", "import", str(archive))
        if res.returncode != 0:
            raise RuntimeError(f"ctr images import {archive} failed: {res.stderr.strip()}")
        return res.stdout

    def import_pause(self) -> None:
        if PAUSE_IMAGE in self.ctr("images", "ls", "-q").stdout:
            return
        archive = self.dir / "pause.tar"
        archive.write_bytes(docker_archive(PAUSE_IMAGE, {"pause": (self.bin / "pause").read_bytes()}, ["/pause"]))
        self.import_image(archive)

    # ------------------------------------------------------------------ cleanup

    def _hierarchies(self) -> list[Path]:
        if not CGROUP_FS.is_dir():
            return []
        if (CGROUP_FS / "cgroup.controllers").exists():
            return [CGROUP_FS]
        # cgroup v1: one hierarchy per controller, and maybe cgroup2's "unified" beside them (runc uses it too).
        return sorted(
            p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists()
        )

    def leftover_pids(self) -> set[int]:
        """Every process still in the node's namespaces (both its network and mount namespace) or under
        its cgroup root."""
        info = self.info()
        net, mnt = info.get("netns"), info.get("mntns")
        pids: set[int] = set()
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            # Both namespaces must match: a namespace's inode number can be reused once it is gone,
            # and a process of someone else's must never be taken for one of the node's.
            try:
                if net and mnt and os.stat(entry / "ns" / "net").st_ino == net:
                    if os.stat(entry / "ns" / "mnt").st_ino == mnt:
                        pids.add(int(entry.name))
            except OSError:
                continue
        for hierarchy in self._hierarchies():
            root = hierarchy / self.cgroup
            if root.is_dir():
                for procs in root.rglob("cgroup.procs"):
                    try:
                        pids.update(int(x) for x in procs.read_text().split())
                    except (OSError, ValueError):
                        continue
        return pids

    def sweep(self, timeout: float = 20.0) -> list[str]:
        """Kill what is left of the node, remove its cgroups, mounts and directories. Returns what it removed."""
        removed: list[str] = []
        deadline = time.monotonic() + timeout
        sig = signal.SIGTERM
        while pids := self.leftover_pids():
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline - timeout / 2:
                sig = signal.SIGKILL
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes of the real node survive SIGKILL: {sorted(pids)}")
            time.sleep(0.2)
        info = self.info()
        if info.pop("netns", None) is not None and self.info_file.parent.is_dir():
            info.pop("mntns", None)
            self.info_file.write_text(json.dumps(info))
        for hierarchy in self._hierarchies():
            root = hierarchy / self.cgroup
            if root.is_dir():
                for cg in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    _rmdir_cgroup(cg)
                _rmdir_cgroup(root)
                removed.append(str(root))
        for target in reversed(_mounts_under((self.run, self.dir))):
            subprocess.run(["umount", "-l", target], capture_output=True)
            removed.append(f"mount {target}")
        if self.run.exists():
            shutil.rmtree(self.run, ignore_errors=True)
            removed.append(str(self.run))
        try:
            self.run.parent.rmdir()  # /run/minerguard, when no other cluster's node uses it
        except OSError:
            pass
        for path in self.info().get("created_dirs", []):  # type: ignore[union-attr]
            try:
                Path(str(path)).rmdir()
            except OSError:
                pass
        return removed


def _rmdir_cgroup(cg: Path) -> None:
    for _ in range(50):
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


def _mounts_under(roots: tuple[Path, ...]) -> list[str]:
    out = []
    prefixes = [str(r.resolve()) if r.exists() else str(r) for r in roots]
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if any(target == p or target.startswith(p + "/") for p in prefixes):
                out.append(target)
    return out


def _sign_client(pki: Path, name: str, subj: str) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ext = pki / "client.ext"
    if not ext.exists():
        ext.write_text("extendedKeyUsage=clientAuth\n")
    key, csr = str(pki / f"{name}.key"), str(pki / f"{name}.csr")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", key, "-out", csr)
    openssl(
        "x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
        "-CAcreateserial", "-days", "3650", "-out", str(pki / f"{name}.crt"), "-extfile", str(ext),
    )  # fmt: skip


def _kubeconfig(path: Path, server: str, ca: Path, crt: Path, key: Path) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: "{server}", certificate-authority: "{ca}"}}
users:
- name: user
  user: {{client-certificate: "{crt}", client-key: "{key}"}}
contexts:
- name: local
  context: {{cluster: local, user: user}}
current-context: local
"""
    )


def docker_archive(reference: str, files: dict[str, bytes], entrypoint: list[str]) -> bytes:
    """A one-layer image as a docker-archive (what ``ctr images import`` reads), with ``files`` at its root."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [{"Config": f"{config_id}.json", "RepoTags": [reference], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        members = ((f"{diff_id}/layer.tar", layer_bytes), (f"{config_id}.json", config), ("manifest.json", manifest))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def host_problem() -> str | None:
    """Why this machine cannot run the real node, or None when it can."""
    if os.geteuid() != 0:
        return "not root (the kubelet, containerd and network namespaces need root)"
    for t in ("unshare", "nsenter", "socat", "runc", "iptables", "ipset", "ip", "mount"):
        if not shutil.which(t):
            return f"{t} is not installed (hack/tools.sh real-node installs the Debian packages)"
    if not Path("/usr/lib/cni/ptp").exists():
        return "the CNI plugins are not installed (Debian containernetworking-plugins)"
    if not CGROUP_FS.is_dir():
        return "no cgroup filesystem at /sys/fs/cgroup"
    return None
