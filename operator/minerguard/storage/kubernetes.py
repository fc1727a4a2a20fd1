"""The only module that talks to the Kubernetes API.

Every call the operator makes goes through :class:`KubeStorage`; each method is one
API call (or a documented small sequence), takes and returns plain dicts, and turns
``ApiException`` and connection failures into the project's own errors
(:mod:`minerguard.errors`). Callers never see the client library.
"""
# size: every Kubernetes API call of the operator is in this one module by house rule, so it grows with
# the calls (504 lines with the incident listing and the evict delete); split it by resource past 550.

from __future__ import annotations

import base64
import datetime
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import tenacity
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from minerguard import API_GROUP, API_VERSION, __version__, observability
from minerguard.errors import AlreadyExists, Conflict, Forbidden, Invalid, KubeError, NotFound, Transient
from minerguard.storage.clusterpolicies import ClusterPolicies

log = logging.getLogger(__name__)
T = TypeVar("T")

POLICIES = "minerpolicies"
INCIDENTS = "minerincidents"
PEERINGS = "clusterkopfpeerings"
REPORTING_CONTROLLER = "minerguard.io/operator"


def _translate(exc: Exception, what: str) -> KubeError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason = str(exc.reason or "")
        message = f"{what}: {status} {reason}"
        body = exc.body if isinstance(exc.body, str) else ""
        if body:
            message += f" {body[:300]}"
        if status == 404:
            return NotFound(message, status, reason)
        if status == 409:
            if "AlreadyExists" in body or "already exists" in body:
                return AlreadyExists(message, status, reason)
            return Conflict(message, status, reason)
        if status in (401, 403):
            return Forbidden(message, status, reason)
        if status == 422:
            return Invalid(message, status, reason)
        if status == 429 or status >= 500 or status == 0:
            return Transient(message, status, reason, retry_after=_retry_after(exc))
        return KubeError(message, status, reason)
    return Transient(f"{what}: {exc}", 0, type(exc).__name__)


def _retry_after(exc: ApiException) -> float | None:
    """The seconds a 429/503 answer's ``Retry-After`` header asks for, if it has one (capped at a minute)."""
    headers = exc.headers or {}
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(60.0, max(0.0, float(raw))) if raw is not None else None
    except (TypeError, ValueError):
        return None


_PLURALS = {"Pods": "Pod", "Nodes": "Node", "NetworkPolicies": "NetworkPolicy"}


def _verb_and_resource(what: str) -> tuple[str, str]:
    """``("get", "Pod")`` from ``"get Pod ns/name"``: every call's description starts with its verb and kind."""
    words = what.split(" ", 2)
    resource = words[1] if len(words) > 1 else ""
    return words[0], _PLURALS.get(resource, resource)


def _stale_json_patch(message: str) -> bool:
    """Whether a refused JSON patch failed on the object having changed since it was read (not on its own form)."""
    return any(s in message for s in ("test failed", "testing value", "nonexistent", "missing value"))


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An API client from the given kubeconfig, $KUBECONFIG, or the in-cluster service account."""
    try:
        config.load_incluster_config()
        cfg = client.Configuration.get_default_copy()
    except config.ConfigException:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = 32
    cfg.retries = False
    api = client.ApiClient(cfg)
    # The field manager the apiserver records for every write: managedFields show what minerguard touched.
    api.user_agent = f"minerguard/{__version__}"
    return api


class KubeStorage(ClusterPolicies):
    """Typed, error-translating access to the objects minerguard reads and writes."""

    def __init__(self, api: client.ApiClient, instance: str, request_timeout: float = 10.0) -> None:
        self.api = api
        self.instance = instance
        self.timeout = request_timeout
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.events = client.EventsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.authorization = client.AuthorizationV1Api(api)

    # ------------------------------------------------------------------ plumbing

    def _call(self, what: str, fn: Callable[..., T], *args: Any, write: bool = False, **kwargs: Any) -> T:
        verb, resource = _verb_and_resource(what)
        observability.API_CALLS.labels(verb, resource).inc()
        if write:
            observability.API_WRITES.labels(resource).inc()
        try:
            result = fn(*args, _request_timeout=self.timeout, **kwargs)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            error = _translate(exc, what)
            observability.API_ERRORS.labels(type(error).__name__).inc()
            raise error from exc
        return result

    def _plain(self, obj: Any) -> dict[str, Any]:
        if isinstance(obj, dict):
            return obj
        data = self.api.sanitize_for_serialization(obj)
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ pods and owners

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._plain(self._call(f"get Pod {namespace}/{name}", self.core.read_namespaced_pod, name, namespace))

    def list_pods(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        res = self._call(
            f"list Pods in {namespace}", self.core.list_namespaced_pod, namespace, label_selector=label_selector
        )
        return [self._plain(p) for p in res.items]

    def patch_pod_metadata(
        self, namespace: str, name: str, labels: Mapping[str, str | None], annotations: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Merge-patch labels and annotations (None removes a key). No resourceVersion: never conflicts."""
        body = {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}}
        return self._plain(
            self._call(
                f"patch Pod {namespace}/{name}", self.core.patch_namespaced_pod, name, namespace, body, write=True
            )
        )

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Delete the pod now (grace period 0), only if it is still the one with ``uid`` (409 otherwise)."""
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        self._call(
            f"delete Pod {namespace}/{name}", self.core.delete_namespaced_pod, name, namespace, body=body, write=True
        )

    def get_owner(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        readers: dict[str, Callable[..., Any]] = {
            "ReplicaSet": self.apps.read_namespaced_replica_set,
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
            "Job": self.batch.read_namespaced_job,
            "CronJob": self.batch.read_namespaced_cron_job,
        }
        reader = readers.get(kind)
        if reader is None:
            raise NotFound(f"owner kind {kind} is not followed", 404, "NotFollowed")
        return self._plain(self._call(f"get {kind} {namespace}/{name}", reader, name, namespace))

    def scale_owner(self, namespace: str, kind: str, name: str, replicas: int) -> None:
        patchers: dict[str, Callable[..., Any]] = {
            "Deployment": self.apps.patch_namespaced_deployment_scale,
            "StatefulSet": self.apps.patch_namespaced_stateful_set_scale,
            "ReplicaSet": self.apps.patch_namespaced_replica_set_scale,
        }
        patcher = patchers.get(kind)
        if patcher is None:
            raise Invalid(f"cannot scale a {kind}", 422, "NotScalable")
        self._call(
            f"scale {kind} {namespace}/{name}", patcher, name, namespace, {"spec": {"replicas": replicas}}, write=True
        )

    def patch_owner(
        self,
        namespace: str,
        kind: str,
        name: str,
        annotations: Mapping[str, str | None],
        spec: Mapping[str, Any] | None,
    ) -> None:
        """Merge-patch annotations (and optionally spec fields) of a workload controller."""
        patchers: dict[str, Callable[..., Any]] = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "ReplicaSet": self.apps.patch_namespaced_replica_set,
            "Job": self.batch.patch_namespaced_job,
            "CronJob": self.batch.patch_namespaced_cron_job,
        }
        patcher = patchers.get(kind)
        if patcher is None:
            raise Invalid(f"cannot patch a {kind}", 422, "NotPatchable")
        body: dict[str, Any] = {"metadata": {"annotations": dict(annotations)}}
        if spec:
            body["spec"] = dict(spec)
        self._call(f"patch {kind} {namespace}/{name}", patcher, name, namespace, body, write=True)

    # ------------------------------------------------------------------ network policies

    def list_network_policies(self, namespace: str) -> list[dict[str, Any]]:
        res = self._call(
            f"list NetworkPolicies in {namespace}", self.networking.list_namespaced_network_policy, namespace
        )
        return [self._plain(p) for p in res.items]

    def get_network_policy(self, namespace: str, name: str) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"get NetworkPolicy {namespace}/{name}", self.networking.read_namespaced_network_policy, name, namespace
            )
        )

    def create_network_policy(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name", "")
        return self._plain(
            self._call(
                f"create NetworkPolicy {namespace}/{name}",
                self.networking.create_namespaced_network_policy,
                namespace,
                dict(body),
                write=True,
            )
        )

    def patch_network_policy(
        self, namespace: str, name: str, patch: list[dict[str, Any]] | Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON patch (a list of operations) or a merge patch (a mapping); neither needs the resourceVersion.

        A JSON patch whose ``test`` failed, or whose path vanished, because the object changed since it was
        read raises Conflict, so :func:`retrying` reads again and builds a new patch.
        """
        body: Any = [dict(op) for op in patch] if isinstance(patch, list) else dict(patch)
        try:
            return self._plain(
                self._call(
                    f"patch NetworkPolicy {namespace}/{name}",
                    self.networking.patch_namespaced_network_policy,
                    name,
                    namespace,
                    body,
                    write=True,
                )
            )
        except Invalid as exc:
            if isinstance(patch, list) and _stale_json_patch(str(exc)):
                raise Conflict(str(exc), 409, "PatchTestFailed") from exc
            raise

    def delete_network_policy(self, namespace: str, name: str) -> None:
        self._call(
            f"delete NetworkPolicy {namespace}/{name}",
            self.networking.delete_namespaced_network_policy,
            name,
            namespace,
            write=True,
        )

    # ------------------------------------------------------------------ namespaces

    def get_namespace(self, name: str) -> dict[str, Any]:
        return self._plain(self._call(f"get Namespace {name}", self.core.read_namespace, name))

    def patch_namespace_labels(self, name: str, labels: Mapping[str, str | None]) -> dict[str, Any]:
        """Merge-patch labels of a namespace (None removes a key). No resourceVersion: never conflicts."""
        return self._plain(
            self._call(
                f"patch Namespace {name}",
                self.core.patch_namespace,
                name,
                {"metadata": {"labels": dict(labels)}},
                write=True,
            )
        )

    def patch_namespace_annotations(
        self, name: str, annotations: Mapping[str, str | None], resource_version: str
    ) -> dict[str, Any]:
        """Merge-patch annotations of a namespace on condition of its resourceVersion (Conflict when it changed)."""
        body = {"metadata": {"resourceVersion": resource_version, "annotations": dict(annotations)}}
        return self._plain(self._call(f"patch Namespace {name}", self.core.patch_namespace, name, body, write=True))

    # ------------------------------------------------------------------ nodes

    def list_nodes(self) -> list[dict[str, Any]]:
        return [self._plain(n) for n in self._call("list Nodes", self.core.list_node).items]

    def get_node(self, name: str) -> dict[str, Any]:
        return self._plain(self._call(f"get Node {name}", self.core.read_node, name))

    def patch_node(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch a node. Taints are a list: pass the resourceVersion in the body to guard against races."""
        return self._plain(self._call(f"patch Node {name}", self.core.patch_node, name, dict(body), write=True))

    # ------------------------------------------------------------------ custom resources

    def get_incident(self, namespace: str, name: str) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"get MinerIncident {namespace}/{name}",
                self.custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                INCIDENTS,
                name,
            )
        )

    def list_incidents(self) -> list[dict[str, Any]]:
        """Every MinerIncident, in every namespace."""
        res = self._call(
            "list MinerIncident", self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, INCIDENTS
        )
        return [self._plain(i) for i in (res or {}).get("items") or []]

    def create_incident(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return self._plain(
            self._call(
                f"create MinerIncident {namespace}/{name}",
                self.custom.create_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                INCIDENTS,
                dict(body),
                write=True,
            )
        )

    def replace_incident_status(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the status subresource with the body's resourceVersion (Conflict when stale)."""
        name = body["metadata"]["name"]
        return self._plain(
            self._call(
                f"update MinerIncident {namespace}/{name} status",
                self.custom.replace_namespaced_custom_object_status,
                API_GROUP,
                API_VERSION,
                namespace,
                INCIDENTS,
                name,
                dict(body),
                write=True,
            )
        )

    def patch_incident_spec(self, namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"patch MinerIncident {namespace}/{name}",
                self.custom.patch_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                INCIDENTS,
                name,
                {"spec": dict(spec)},
                write=True,
            )
        )

    def get_policy(self, name: str) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"get MinerPolicy {name}", self.custom.get_cluster_custom_object, API_GROUP, API_VERSION, POLICIES, name
            )
        )

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"patch MinerPolicy {name} status",
                self.custom.patch_cluster_custom_object_status,
                API_GROUP,
                API_VERSION,
                POLICIES,
                name,
                {"status": dict(status)},
                write=True,
            )
        )

    def get_secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret, decoded (the Falco endpoint's token: the only Secret the operator may read)."""
        secret = self._call(f"get Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace)
        raw = (secret.data or {}).get(key)
        if raw is None:
            raise NotFound(f"Secret {namespace}/{name} has no key {key}")
        return base64.b64decode(raw).decode("utf-8").strip()

    def get_peering(self, name: str) -> dict[str, Any]:
        return self._plain(
            self._call(
                f"get ClusterKopfPeering {name}",
                self.custom.get_cluster_custom_object,
                "kopf.dev",
                "v1",
                PEERINGS,
                name,
            )
        )

    # ------------------------------------------------------------------ access reviews and events

    def review_access(self, user: str, groups: list[str], attributes: Mapping[str, str]) -> bool:
        """Whether ``user`` in ``groups`` may do what ``attributes`` say: one SubjectAccessReview (stores nothing)."""
        spec = {"user": user, "groups": list(groups), "resourceAttributes": dict(attributes)}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        what = f"create SubjectAccessReview {user} {attributes.get('verb')} {attributes.get('resource')}"
        answer = self._plain(self._call(what, self.authorization.create_subject_access_review, body))
        return bool((answer.get("status") or {}).get("allowed"))

    def emit_event(
        self,
        regarding: Mapping[str, str],
        reason: str,
        note: str,
        *,
        warning: bool = True,
        action: str = "Detect",
        related: Mapping[str, str] | None = None,
    ) -> None:
        """Record an events.k8s.io/v1 Event about ``regarding`` (apiVersion, kind, name, namespace?, uid?).

        Events about cluster-scoped objects (Nodes, MinerPolicies) go to the ``default`` namespace,
        where ``kubectl describe`` finds them.
        """
        namespace = regarding.get("namespace") or "default"
        body: dict[str, Any] = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{regarding.get('name', 'x')[:200]}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
            "eventTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance[:128],
            "action": action,
            "reason": reason,
            "note": note[:1024],
            "type": "Warning" if warning else "Normal",
            "regarding": {k: v for k, v in regarding.items() if v},
        }
        if related:
            body["related"] = {k: v for k, v in related.items() if v}
        self._call(
            f"create Event {reason} for {regarding.get('kind')} {regarding.get('name')}",
            self.events.create_namespaced_event,
            namespace,
            body,
            write=True,
        )


def retrying(
    fn: Callable[[], T], *, attempts: int = 6, base_delay: float = 0.2, max_delay: float = 5.0, what: str = ""
) -> T:
    """Run ``fn``, retrying Transient and Conflict errors with jittered exponential back-off.

    A server that says how long to wait (``Retry-After`` on a 429 or 503) is waited for at least
    that long. ``fn`` must be safe to repeat (re-read before it writes, or write idempotently).
    """
    jitter = tenacity.wait_random_exponential(multiplier=base_delay, max=max_delay)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = exc.retry_after if isinstance(exc, Transient) and exc.retry_after is not None else 0.0
        return max(asked, jitter(state))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.info("Retrying %s after %s (attempt %d/%d)", what or "call", exc, state.attempt_number, attempts)

    retryer = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait,
        retry=tenacity.retry_if_exception_type((Transient, Conflict)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retryer(fn)
