"""The CRDs of the admin-tier enforcement backends, taken from their Go modules (downloaded, never built).

``go mod download -json <module>@<version>`` gives the module's directory in the Go module cache; the CRD
is a file in it. The versions are pinned:

- AdminNetworkPolicy ``v1alpha1``: sigs.k8s.io/network-policy-api at the commit kube-network-policies
  v0.8.0 requires (v0.1.6-0.20250401132235-45061d10895e, "v0.1.6-pre"), experimental channel (it has the
  ``networks`` egress peer, which kube-network-policies implements);
- ClusterNetworkPolicy ``v1alpha2``: sigs.k8s.io/network-policy-api v0.3.0, standard channel;
- CiliumClusterwideNetworkPolicy ``cilium.io/v2``: github.com/cilium/cilium v1.20.2;
- Calico GlobalNetworkPolicy ``crd.projectcalico.org/v1``: github.com/projectcalico/calico at the pseudo-version
  the Go proxy serves for its monorepo (Calico's v3.x tags are not valid Go module versions).

The fixtures install them at the API level only: nothing enforces them on the wire here (see
docs/operations.md, "Enforcement backends").
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

NETWORK_POLICY_API = "sigs.k8s.io/network-policy-api"
SOURCES: dict[str, tuple[str, str, str]] = {
    "anp": (
        NETWORK_POLICY_API,
        "v0.1.6-0.20250401132235-45061d10895e",
        "config/crd/experimental/policy.networking.k8s.io_adminnetworkpolicies.yaml",
    ),
    "cnp": (NETWORK_POLICY_API, "v0.3.0", "config/crd/standard/policy.networking.k8s.io_clusternetworkpolicies.yaml"),
    "cilium": (
        "github.com/cilium/cilium",
        "v1.20.2",
        "pkg/k8s/apis/cilium.io/client/crds/v2/ciliumclusterwidenetworkpolicies.yaml",
    ),
    "calico": (
        "github.com/projectcalico/calico",
        "v1.11.0-cni-plugin.0.20250813170300-a0db560f0520",
        "libcalico-go/config/crd/crd.projectcalico.org_globalnetworkpolicies.yaml",
    ),
}
NAMES = {
    "anp": "adminnetworkpolicies.policy.networking.k8s.io",
    "cnp": "clusternetworkpolicies.policy.networking.k8s.io",
    "cilium": "ciliumclusterwidenetworkpolicies.cilium.io",
    "calico": "globalnetworkpolicies.crd.projectcalico.org",
}


@functools.cache
def module_dir(module: str, version: str) -> Path:
    res = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True, timeout=600
    )
    info = json.loads(res.stdout or "{}")
    if res.returncode != 0 or "Dir" not in info:
        raise AssertionError(f"go mod download {module}@{version}: {info.get('Error') or res.stderr}")
    return Path(info["Dir"])


def crd_file(which: str) -> Path:
    module, version, path = SOURCES[which]
    return module_dir(module, version) / path
