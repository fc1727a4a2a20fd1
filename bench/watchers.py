"""Watches that timestamp what the contenders do, as seen through the API.

Each :class:`RawWatch` lists, then watches from the list's resourceVersion (re-listing
after a 410 or a dropped connection), and hands every event, as a plain dict, to a
callback together with the ``time.monotonic()`` at which it arrived. The
:class:`Observer` keeps the first time each fact was seen (a pod carries a label, a
NetworkPolicy exists) and counts the writes made to the objects it follows; waiting
for a fact is a condition wait on those events, never a polling sleep.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

log = logging.getLogger("bench.watch")

Event = dict[str, Any]
Key = tuple[str, str]


class RawWatch(threading.Thread):
    """List+watch one resource in a daemon thread; ``on_event(type, obj, t)`` for each event."""

    def __init__(
        self,
        name: str,
        lister: Callable[..., Any],
        on_event: Callable[[str, dict[str, Any], float], None],
        **list_kwargs: Any,
    ) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.lister = lister
        self.on_event = on_event
        self.list_kwargs = list_kwargs
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self.errors = 0

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def _list(self) -> str:
        resp = self.lister(**self.list_kwargs, _preload_content=False, _request_timeout=60)
        body = json.loads(resp.data)
        now = time.monotonic()
        for item in body.get("items") or []:
            self.on_event("LISTED", item, now)
        return str(body["metadata"]["resourceVersion"])

    def run(self) -> None:
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                    self.synced.set()
                self._watch = watch.Watch()
                for ev in self._watch.stream(
                    self.lister,
                    resource_version=rv,
                    timeout_seconds=240,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                    **self.list_kwargs,
                ):
                    now = time.monotonic()
                    etype = str(ev.get("type"))
                    obj = ev.get("object") or {}
                    if etype == "ERROR":
                        rv = ""  # 410 Gone and friends: list again
                        break
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if etype != "BOOKMARK":
                        self.on_event(etype, obj, now)
                    if self._stop.is_set():
                        break
            except Exception as exc:  # noqa: BLE001 - 410 Gone, dropped connections: list again and go on
                self.errors += 1
                log.debug("watch %s: %s", self.name, exc)
                rv = ""
                self._stop.wait(0.5)


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Observer:
    """First-seen times and write counts for everything the benchmark measures."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.labelled: dict[str, dict[Key, float]] = {}  # label key -> pod -> first time seen with label=true
        self.netpols: dict[Key, float] = {}  # NetworkPolicy -> first time seen
        self.netpol_writes: Counter[str] = Counter()  # namespace -> ADDED/MODIFIED/DELETED events
        self.incident_writes: Counter[str] = Counter()  # namespace -> ADDED/MODIFIED events
        self.policy_writes: Counter[str] = Counter()  # policy name -> MODIFIED events
        self.miner_meta_writes: Counter[Key] = Counter()  # miner pod -> label/annotation changes
        self._miner_meta: dict[Key, tuple[Any, Any]] = {}
        self.watches: list[RawWatch] = []

    # ------------------------------------------------------------------ callbacks

    def _labelled(self, label: str) -> Callable[[str, dict[str, Any], float], None]:
        seen = self.labelled.setdefault(label, {})

        def on_event(etype: str, obj: dict[str, Any], t: float) -> None:
            if etype == "DELETED":
                return
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(label) != "true":
                return
            with self.cond:
                seen.setdefault(key_of(obj), t)
                self.cond.notify_all()

        return on_event

    def _netpol(self, etype: str, obj: dict[str, Any], t: float) -> None:
        key = key_of(obj)
        with self.cond:
            if etype in ("ADDED", "LISTED"):
                self.netpols.setdefault(key, t)
            if etype == "DELETED":
                self.netpols.pop(key, None)
            if etype != "LISTED":
                self.netpol_writes[key[0]] += 1
            self.cond.notify_all()

    def _incident(self, etype: str, obj: dict[str, Any], t: float) -> None:
        if etype in ("ADDED", "MODIFIED"):
            with self.cond:
                self.incident_writes[key_of(obj)[0]] += 1

    def _policy(self, etype: str, obj: dict[str, Any], t: float) -> None:
        if etype == "MODIFIED":
            with self.cond:
                self.policy_writes[key_of(obj)[1]] += 1

    def _miner(self, etype: str, obj: dict[str, Any], t: float) -> None:
        meta = obj.get("metadata") or {}
        key = key_of(obj)
        current = (meta.get("labels") or {}, meta.get("annotations") or {})
        with self.cond:
            previous = self._miner_meta.get(key)
            self._miner_meta[key] = current
            if etype == "MODIFIED" and previous is not None and previous != current:
                self.miner_meta_writes[key] += 1

    # ------------------------------------------------------------------ lifecycle

    def start(self, api: client.ApiClient, labels: list[str], role_label: str, group: str, version: str) -> None:
        core = client.CoreV1Api(api)
        net = client.NetworkingV1Api(api)
        custom = client.CustomObjectsApi(api)
        for label in labels:
            self.watches.append(
                RawWatch(
                    f"pods-{label}",
                    core.list_pod_for_all_namespaces,
                    self._labelled(label),
                    label_selector=f"{label}=true",
                )
            )
        self.watches.append(RawWatch("netpols", net.list_network_policy_for_all_namespaces, self._netpol))
        self.watches.append(
            RawWatch("miners", core.list_pod_for_all_namespaces, self._miner, label_selector=f"{role_label}=miner")
        )

        def incidents(**kw: Any) -> Any:
            return custom.list_cluster_custom_object(group, version, "minerincidents", **kw)

        def policies(**kw: Any) -> Any:
            return custom.list_cluster_custom_object(group, version, "minerpolicies", **kw)

        self.watches.append(RawWatch("incidents", incidents, self._incident))
        self.watches.append(RawWatch("policies", policies, self._policy))
        for w in self.watches:
            w.start()
        for w in self.watches:
            if not w.synced.wait(60):
                raise RuntimeError(f"{w.name} did not list within 60s")

    def stop(self) -> None:
        for w in self.watches:
            w.stop()

    # ------------------------------------------------------------------ queries

    def contained_at(self, label: str | None, pod: Key, netpol: Key | None) -> float | None:
        """When both facts held (the later of the two first-seen times), or None while one is missing."""
        with self.cond:
            times = []
            if label is not None:
                t = self.labelled.get(label, {}).get(pod)
                if t is None:
                    return None
                times.append(t)
            if netpol is not None:
                t = self.netpols.get(netpol)
                if t is None:
                    return None
                times.append(t)
            return max(times) if times else None

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True
