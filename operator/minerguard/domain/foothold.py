"""Foothold evidence of an incident: how the miner got in, what its access can reach, where it runs.

A miner is the canary in the coal mine: the money it burns is the small part, it proves the cluster is
open. An incident's ``status.foothold`` answers the responder's next questions from the pod and its
owners, read once when the incident is first recorded:

* who made it: the chain of controllers from the pod up to the top (Pod <- ReplicaSet <- Deployment,
  Job <- CronJob), each with its creation time and the field managers that wrote it
  (``managedFields[].manager``: ``kubectl-client-side-apply``, ``helm``, ``argocd-controller`` ...), and,
  when the chart's creator stamp is on, the user and groups that created the top object
  (:data:`CREATED_BY_ANNOTATION`);
* what its ServiceAccount can do: a yes/no table of :data:`DANGEROUS_ACCESS`, one SubjectAccessReview each;
* what it can do to its node: privileged, hostPID/IPC/Network, hostPath paths, added capabilities, and
  whether the ServiceAccount token is mounted;
* where: node, images with their resolved ``imageID`` digests and registry hosts, when the pod was
  created and when it was detected.

Pure: the service reads the objects and asks the reviews (:mod:`minerguard.services.foothold`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.domain.text import printable, shorten
from minerguard.domain.workload import CREATED_BY_ANNOTATION

CREATED_BY_GROUPS_ANNOTATION = "minerguard.io/created-by-groups"
"""Written with it: the creating user's groups, comma-separated."""

MAX_CHAIN = 5
"""Controllers followed above the pod (Pod <- ReplicaSet <- Deployment needs two)."""
MAX_MANAGERS = 10
MAX_PATHS = 20
FOLLOWED_KINDS = ("ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
"""Controller kinds whose objects are read for the chain; the chain stops at any other kind."""


@dataclass(frozen=True)
class Access:
    """One dangerous thing a ServiceAccount may be allowed to do, asked as one SubjectAccessReview."""

    can: str
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    cluster_wide: bool = False

    def attributes(self, namespace: str) -> dict[str, str]:
        """The review's ``resourceAttributes``: in the pod's namespace, or cluster-wide."""
        out = {"verb": self.verb, "group": self.group, "resource": self.resource}
        if self.subresource:
            out["subresource"] = self.subresource
        if not self.cluster_wide:
            out["namespace"] = namespace
        return out


DANGEROUS_ACCESS: tuple[Access, ...] = (
    Access("create Pods", "create", "pods"),
    Access("create Pods cluster-wide", "create", "pods", cluster_wide=True),
    Access("create Deployments", "create", "deployments", "apps"),
    Access("create Deployments cluster-wide", "create", "deployments", "apps", cluster_wide=True),
    Access("create DaemonSets", "create", "daemonsets", "apps"),
    Access("create DaemonSets cluster-wide", "create", "daemonsets", "apps", cluster_wide=True),
    Access("read Secrets", "get", "secrets"),
    Access("read Secrets cluster-wide", "get", "secrets", cluster_wide=True),
    Access("exec into Pods", "create", "pods", subresource="exec"),
    Access("patch Nodes", "patch", "nodes", cluster_wide=True),
    Access(
        "create ClusterRoleBindings", "create", "clusterrolebindings", "rbac.authorization.k8s.io", cluster_wide=True
    ),
    Access("impersonate users", "impersonate", "users", cluster_wide=True),
)
"""The fixed list of dangerous verbs a miner's ServiceAccount is checked for (docs/operations.md lists it)."""

YES, NO, UNKNOWN = "yes", "no", "unknown"


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def service_account_groups(namespace: str) -> list[str]:
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _str(value: object, limit: int = 253) -> str:
    return shorten(printable(value), limit) if isinstance(value, str) else ""


def controller_of(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controller, when it is a kind the chain follows."""
    for ref in _list(_map(obj.get("metadata")).get("ownerReferences")):
        ref = _map(ref)
        if ref.get("controller") is True and ref.get("kind") in FOLLOWED_KINDS and isinstance(ref.get("name"), str):
            return str(ref["kind"]), str(ref["name"])
    return None


def managers(obj: Mapping[str, Any]) -> list[str]:
    """The distinct field managers that wrote the object (oldest entry first), bounded."""
    out: list[str] = []
    for entry in _list(_map(obj.get("metadata")).get("managedFields")):
        name = _str(_map(entry).get("manager"), 128)
        if name and name not in out:
            out.append(name)
    return out[:MAX_MANAGERS]


def link(obj: Mapping[str, Any], kind: str = "") -> dict[str, Any]:
    """One step of the owner chain: kind, name, uid, creation time, field managers."""
    meta = _map(obj.get("metadata"))
    out: dict[str, Any] = {
        "kind": kind or _str(obj.get("kind"), 63) or "Pod",
        "name": _str(meta.get("name")),
        "uid": _str(meta.get("uid"), 63),
        "created": _str(meta.get("creationTimestamp"), 40).replace("+00:00", "Z"),
        "managers": managers(obj),
    }
    return {k: v for k, v in out.items() if v not in ("", None)}


def creator(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """Who created the object, from the creator stamp's annotations; None when it carries no stamp."""
    annotations = _map(_map(obj.get("metadata")).get("annotations"))
    user = _str(annotations.get(CREATED_BY_ANNOTATION))
    if not user:
        return None
    groups = [g.strip() for g in _str(annotations.get(CREATED_BY_GROUPS_ANNOTATION), 1024).split(",") if g.strip()]
    return {"username": user, "groups": groups[:20]}


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out.extend(_map(c) for c in _list(spec.get(key)))
    return out


def host_exposure(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What the pod can do to its node, and whether it holds its ServiceAccount's token."""
    spec = _map(pod.get("spec"))
    containers = _containers(spec)
    capabilities: list[str] = []
    for c in containers:
        for cap in _list(_map(_map(c.get("securityContext")).get("capabilities")).get("add")):
            if isinstance(cap, str) and cap not in capabilities:
                capabilities.append(_str(cap, 63))
    volumes = [_map(v) for v in _list(spec.get("volumes"))]
    paths = [_str(_map(v.get("hostPath")).get("path")) for v in volumes if isinstance(v.get("hostPath"), Mapping)]
    token_volume = any(
        "serviceAccountToken" in _map(source)
        for v in volumes
        for source in _list(_map(v.get("projected")).get("sources"))
    )
    return {
        "privileged": any(_map(c.get("securityContext")).get("privileged") is True for c in containers),
        "hostPID": spec.get("hostPID") is True,
        "hostIPC": spec.get("hostIPC") is True,
        "hostNetwork": spec.get("hostNetwork") is True,
        "hostPaths": [p for p in paths if p][:MAX_PATHS],
        "capabilities": capabilities[:MAX_PATHS],
        # The effective value: the token is mounted when admission projected it into the pod.
        "automountServiceAccountToken": token_volume or spec.get("automountServiceAccountToken") is True,
    }


def registry_host(image: str) -> str:
    """The registry an image reference names (Docker Hub when its first part is not a host)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def repository(image: str) -> str:
    """The image reference without tag or digest, with its registry host: ``docker.io/library/alpine``."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    host = registry_host(name)
    if name.startswith(host + "/"):
        return name
    return f"{host}/{name}" if "/" in name else f"{host}/library/{name}"


def digest(image_id: str) -> str:
    """The ``sha256:...`` digest of a resolved ``imageID`` (``docker-pullable://repo@sha256:...``), or ''."""
    _, at, tail = image_id.rpartition("@")
    value = tail if at else image_id
    return value if value.startswith("sha256:") else ""


def where(pod: Mapping[str, Any], detected: str) -> dict[str, Any]:
    """Node, images (with resolved digest and registry), creation and detection times."""
    meta, spec, status = _map(pod.get("metadata")), _map(pod.get("spec")), _map(pod.get("status"))
    ids: dict[str, str] = {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for s in _list(status.get(key)):
            s = _map(s)
            ids[_str(s.get("name"))] = _str(s.get("imageID"), 512)
    images = []
    for c in _containers(spec)[:20]:
        image = _str(c.get("image"), 512)
        name = _str(c.get("name"))
        entry = {"container": name, "image": image, "registry": registry_host(image) if image else ""}
        resolved = digest(ids.get(name, "")) or digest(image)
        if resolved:
            entry["digest"] = resolved
        images.append({k: v for k, v in entry.items() if v})
    out = {"node": _str(spec.get("nodeName")), "images": images, "created": _str(meta.get("creationTimestamp"), 40)}
    out["detected"] = detected
    return {k: v for k, v in out.items() if v}


def with_node(foothold: Mapping[str, Any], node: str) -> dict[str, Any]:
    """The record with ``where.node`` filled in: a pod contained before it was scheduled is placed later."""
    out = dict(foothold)
    out["where"] = {**_map(foothold.get("where")), "node": node}
    return out


def reach(answers: Sequence[tuple[Access, bool | None]]) -> list[dict[str, str]]:
    """The SubjectAccessReview table: what the ServiceAccount can do, yes, no or unknown (the review failed)."""
    return [
        {
            "can": a.can,
            "verb": a.verb,
            "resource": f"{a.resource}/{a.subresource}" if a.subresource else a.resource,
            "scope": "Cluster" if a.cluster_wide else "Namespace",
            "allowed": UNKNOWN if allowed is None else YES if allowed else NO,
        }
        for a, allowed in answers
    ]


def build(
    pod: Mapping[str, Any],
    owners: Sequence[Mapping[str, Any]],
    answers: Sequence[tuple[Access, bool | None]],
    detected: str,
) -> dict[str, Any]:
    """The ``status.foothold`` record of a pod whose controllers (nearest first) are ``owners``."""
    chain = [link(pod, "Pod")] + [link(o) for o in owners[:MAX_CHAIN]]
    top = owners[-1] if owners else pod
    spec = _map(pod.get("spec"))
    namespace = _str(_map(pod.get("metadata")).get("namespace"))
    account = _str(spec.get("serviceAccountName")) or _str(spec.get("serviceAccount")) or "default"
    out: dict[str, Any] = {
        "ownerChain": chain,
        "serviceAccount": {"name": account, "namespace": namespace, "reach": reach(answers)},
        "host": host_exposure(pod),
        "where": where(pod, detected),
    }
    stamp = creator(top)
    if stamp:
        out["creator"] = stamp
    out["summary"] = summary(out)
    return out


def dangerous(foothold: Mapping[str, Any]) -> list[str]:
    """What the ServiceAccount can do of the dangerous list (the "yes" rows)."""
    rows = _list(_map(foothold.get("serviceAccount")).get("reach"))
    return [str(_map(r).get("can")) for r in rows if _map(r).get("allowed") == YES]


def exposure(foothold: Mapping[str, Any]) -> list[str]:
    """The host exposure as short words: privileged, hostPID, hostPath:/, CAP_SYS_ADMIN..."""
    host = _map(foothold.get("host"))
    words = [k for k in ("privileged", "hostPID", "hostIPC", "hostNetwork") if host.get(k) is True]
    words += [f"hostPath:{p}" for p in _list(host.get("hostPaths"))]
    words += [str(c) for c in _list(host.get("capabilities"))]
    return words


def summary(foothold: Mapping[str, Any]) -> str:
    """One line for the printer column: who, through which top object, and the worst reach."""
    chain = _list(foothold.get("ownerChain"))
    top = _map(chain[-1]) if chain else {}
    who = _map(foothold.get("creator")).get("username") or next(iter(_list(top.get("managers"))), "") or "unknown"
    account = _map(foothold.get("serviceAccount"))
    can = dangerous(foothold)
    text = f"{who} via {top.get('kind', 'Pod')}/{top.get('name', '')}; sa {account.get('name', '')}"
    text += f" can {', '.join(can)}" if can else " (none of the dangerous verbs)"
    host = exposure(foothold)
    if host:
        text += f"; host: {', '.join(host)}"
    return shorten(text, 200)
