"""The real node's pure parts (hack/realnode.py, hack/realnode_egress.py): names, configuration, images, egress."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import yaml

from tests.scripts import load_script

realnode = load_script("realnode")
egress = load_script("realnode_egress")


def test_each_cluster_gets_its_own_namespace_run_dir_and_cgroup(tmp_path: Path) -> None:
    a = realnode.Node(tmp_path / "a", tmp_path / "bin")
    b = realnode.Node(tmp_path / "b", tmp_path / "bin")
    assert a.id != b.id and a.run != b.run and a.cgroup != b.cgroup
    assert realnode.Node(tmp_path / "a", tmp_path / "bin").id == a.id
    # UNIX socket paths have a 108-byte limit, whatever the checkout's path.
    assert len(str(a.run / "containerd.sock.ttrpc")) < 100


def test_kubelet_never_changes_kernel_settings_and_reads_them_from_its_mount_namespace(tmp_path: Path) -> None:
    node = realnode.Node(tmp_path, tmp_path / "bin")
    config = yaml.safe_load(node._kubelet_config(tmp_path / "pki"))
    assert config["protectKernelDefaults"] is True and config["makeIPTablesUtilChains"] is False
    assert config["cgroupRoot"] == f"/{node.cgroup}" and config["imageGCHighThresholdPercent"] == 100
    assert config["registerWithTaints"] == [{"key": "minerguard.io/real-node", "value": "true", "effect": "NoSchedule"}]
    script = node._setup_script()
    for key, value in realnode.KUBELET_SYSCTLS.items():
        assert f"printf '%s\\n' {value} > {node.run / 'sysctl' / key.replace('/', '_')}" in script
        assert f"/proc/sys/{key}" in script
    assert script.rstrip().endswith("exec sleep infinity")


def test_every_node_process_but_the_host_bridge_runs_inside_the_namespaces(tmp_path: Path) -> None:
    node = realnode.Node(tmp_path, tmp_path / "bin")
    (tmp_path / "pids").mkdir()
    (tmp_path / "pids" / "node-ns.pid").write_text("4242")
    for name in realnode.COMPONENTS:
        cmd = node.command(name, 26443)
        if name == "node-ns":
            assert cmd[:3] == ["unshare", "--net", "--mount"]
        elif name == "node-api-host":
            assert cmd[0] == "socat" and cmd[-1] == "TCP:127.0.0.1:26443"
        else:
            assert cmd[:6] == ["nsenter", "--target", "4242", "--net", "--mount", "--"], name


def test_containerd_keeps_its_state_and_netns_to_itself(tmp_path: Path) -> None:
    node = realnode.Node(tmp_path, tmp_path / "bin")
    text = node._containerd_config()
    assert "netns_mounts_under_state_dir = true" in text and "restrict_oom_score_adj = true" in text
    assert '"io.containerd.nri.v1.nri"' in text  # disabled: it would share /var/run/nri with every cluster
    assert f'address = "{node.run / "containerd.sock"}"' in text and f'sandbox = "{realnode.PAUSE_IMAGE}"' in text


def test_docker_archive_is_a_loadable_one_layer_image() -> None:
    data = realnode.docker_archive("example.local/pause:1", {"pause": b"\x7fELF..."}, ["/pause"])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] == ["example.local/pause:1"]
        config = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755 and inner.extractfile(member).read() == b"\x7fELF..."  # type: ignore[union-attr]


def test_the_apiserver_egress_only_reaches_the_node_namespace() -> None:
    import ipaddress

    nets = [ipaddress.IPv4Network(realnode.NETNS_RANGE)]
    assert egress.allowed(realnode.NODE_IP, nets) and egress.allowed("10.88.0.17", nets)
    for outside in ("10.244.0.1", "127.0.0.1", "192.168.1.1", "8.8.8.8", "kubernetes.default", "[::1]"):
        assert not egress.allowed(outside, nets), outside
