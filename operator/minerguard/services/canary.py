"""The canary's cycle: the bill and the related workloads of every open incident, once per metric cycle.

Each cycle (the metric interval) takes the open incidents from the watch cache (not Released, not Ended,
no release asked for, not a Node incident) and:

* asks Prometheus **one** query for the CPU usage of every pod of their namespaces
  (:func:`minerguard.domain.promql.pod_usage_query`), adds usage x time to each incident's meter
  (:mod:`minerguard.domain.cost`) and to ``minerguard_stolen_cpu_core_seconds_total{namespace}``;
* looks for related workloads in the in-memory pod views (:mod:`minerguard.domain.related`; no API read)
  and tells new ones in a ``RelatedWorkloadsFound`` Warning Event on the incident;
* writes ``status.cost`` / ``status.related`` through the recorder when they changed, each at most
  once per ``cost.write_interval`` per incident (one status write for both), except an incident's first
  related workloads, written at once.

A released incident is no longer metered: its bill stops at the release. When Prometheus does not answer,
the cost is left as it is (a gap counts at most a few cycles when it answers again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from minerguard import observability
from minerguard.config import CostSettings, PrometheusSettings
from minerguard.domain import cost, promql, related
from minerguard.domain import incidents as inc
from minerguard.domain.text import plural, shorten
from minerguard.domain.workload import Workload
from minerguard.errors import KubeError, MetricsError
from minerguard.services.events import Events
from minerguard.services.recorder import Recorder
from minerguard.services.state import ClusterState
from minerguard.storage.kubernetes import now_iso
from minerguard.storage.prometheus import PrometheusStorage

log = logging.getLogger(__name__)

Key = tuple[str, str]


def is_open(body: Mapping[str, Any]) -> bool:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    kind = (spec.get("workload") or {}).get("kind")
    return not spec.get("release") and kind != "Node" and str(status.get("state") or inc.DETECTED) in inc.OPEN_STATES


def incident_ref(namespace: str, body: Mapping[str, Any]) -> dict[str, str]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerIncident",
        "name": str(meta.get("name") or ""),
        "namespace": namespace,
        "uid": str(meta.get("uid") or ""),
    }


class Canary:
    """Meters open incidents and finds their related workloads; writes through the recorder."""

    def __init__(
        self,
        settings: CostSettings,
        prometheus: PrometheusSettings,
        state: ClusterState,
        recorder: Recorder,
        events: Events,
        client: PrometheusStorage | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.prometheus = prometheus
        self.state = state
        self.recorder = recorder
        self.events = events
        self.client = client
        self.clock = clock
        self._meters: dict[Key, cost.Meter] = {}
        self._written: dict[Key, float] = {}
        self._related_at: dict[Key, float] = {}
        """When each incident's ``status.related`` was last written."""
        self._told: dict[Key, set[str]] = {}

    def open_incidents(self) -> list[tuple[Key, dict[str, Any]]]:
        with self.state.lock:
            items = list(self.state.incidents.items())
        return [(key, entry.body) for key, entry in items if is_open(entry.body)]

    def cycle(self) -> None:
        """One pass over every open incident (one Prometheus query at most)."""
        opened = self.open_incidents()
        keys = {key for key, _ in opened}
        for gone in (set(self._meters) | set(self._related_at)) - keys:
            self._meters.pop(gone, None)
            self._written.pop(gone, None)
            self._related_at.pop(gone, None)
        if not opened:
            return
        usage = self.usage([key[0] for key, body in opened if cost.counted_pods(body)])
        now = self.clock()
        candidates = [entry.workload for _, entry in self.state.pod_items()]
        creators = {key: creator_of(body) for key, body in opened}
        for key, body in opened:
            fields: dict[str, Any] = {}
            bill = self.bill(key, body, usage, now)
            if bill is not None:
                fields["cost"] = bill
            found = self.related(key, body, candidates, creators)
            if found is not None:
                fields["related"], fields["relatedCount"] = found
            self.write(key, body, fields, now)

    def usage(self, namespaces: list[str]) -> dict[tuple[str, str], float] | None:
        """Cores used now by (namespace, pod), in one query; None when there is no answer."""
        if self.client is None or not namespaces:
            return None if self.client is None else {}
        q = promql.pod_usage_query(self.prometheus, namespaces)
        observability.PROMQL_QUERIES.labels(q.signal).inc()
        try:
            answer: Any = self.client.query(q.promql)
            found = promql.read_vector(answer, q.keys)
        except (MetricsError, promql.BadAnswer) as exc:
            observability.PROMQL_ERRORS.labels(q.signal).inc()
            log.info("The bill of open incidents is not metered this cycle: %s", exc)
            return None
        return {(k[0], k[1]): v for k, v in found.items()}

    def bill(
        self, key: Key, body: Mapping[str, Any], usage: Mapping[tuple[str, str], float] | None, now: float
    ) -> dict[str, Any] | None:
        """The incident's new ``status.cost``, or None when it is not metered this cycle."""
        if usage is None:
            return None
        old = (body.get("status") or {}).get("cost") or {}
        meter = self._meters.get(key)
        if meter is None:  # first sight (or a restart): go on from what the record says
            meter = cost.Meter(float(old.get("cpuCoreSeconds") or 0.0), now)
        cores = cost.usage_of(key[0], cost.counted_pods(body), usage)
        new = meter.accrue(cores, now, self.prometheus.interval)
        self._meters[key] = new
        if new.core_seconds > meter.core_seconds:
            observability.STOLEN_CPU.labels(key[0]).inc(new.core_seconds - meter.core_seconds)
        since = str(old.get("since") or now_iso())
        return cost.record(new, self.settings.price_per_core_hour, self.settings.currency, since, now_iso(), cores)

    def related(
        self, key: Key, body: Mapping[str, Any], candidates: list[Workload], creators: Mapping[Key, str]
    ) -> tuple[list[dict[str, Any]], int] | None:
        """(related, count) of the incident, or None when none of its pods is in view any more."""
        status = body.get("status") or {}
        mine = {str(p.get("name")) for p in status.get("pods") or [] if isinstance(p, Mapping)}
        own_view = next((e.workload for n in mine if (e := self.state.pod((key[0], n))) is not None), None)
        if own_view is None:
            return None
        workload = (body.get("spec") or {}).get("workload") or {}
        own = (key[0], str(workload.get("kind") or ""), str(workload.get("name") or ""))
        account = str(((status.get("foothold") or {}).get("serviceAccount") or {}).get("name") or "")
        creator = creators.get(key, "")
        ind = related.indicators(own_view, status.get("evidence") or [], account or own_view.service_account,
                                 [creator])  # fmt: skip
        others = [wl for wl in candidates if not (wl.namespace == key[0] and wl.name in mine)]
        extra = [
            ((k[0], *workload_key(self.state, k)), [f"creator {c}"])
            for k, c in creators.items()
            if c and c == creator and k != key
        ]
        return related.find(ind, own, others, extra)

    def write(self, key: Key, body: Mapping[str, Any], fields: dict[str, Any], now: float) -> None:
        status = body.get("status") or {}
        if "related" in fields:
            self.tell(key, body, fields["related"], fields["relatedCount"])
            same = fields["related"] == (status.get("related") or []) and fields["relatedCount"] == status.get(
                "relatedCount", 0
            )
            # The first related workloads are recorded at once; a set that keeps growing (a wallet shared by
            # a hundred miners: every cycle, every open incident) at most once per write interval. The Event
            # above tells each new one at once either way.
            due = not status.get("related") or now - self._related_at.get(key, 0.0) >= self.settings.write_interval
            if same or not due:
                del fields["related"], fields["relatedCount"]
        if "cost" in fields:
            due = now - self._written.get(key, 0.0) >= self.settings.write_interval
            if not (due and cost.worth_writing(status.get("cost"), fields["cost"])) and "related" not in fields:
                del fields["cost"]
        if not fields:
            return
        try:
            self.recorder.annotate(key[0], key[1], fields)
            if "cost" in fields:
                self._written[key] = now
            if "related" in fields:
                self._related_at[key] = now
        except KubeError as exc:
            log.info("Could not write the bill or related workloads of MinerIncident %s/%s: %s", *key, exc)

    def tell(self, key: Key, body: Mapping[str, Any], items: list[dict[str, Any]], count: int) -> None:
        """A RelatedWorkloadsFound Warning Event naming related workloads not told before (once each)."""
        told = self._told.get(key)
        if told is None:  # first sight: what the record already lists was told before
            told = self._told[key] = set(related.names((body.get("status") or {}).get("related") or []))
        new = [n for n in related.names(items) if n not in told]
        if not new:
            return
        told.update(new)
        shown = {n: i for n, i in zip(related.names(items), items, strict=True)}
        detail = "; ".join(f"{n} ({', '.join(shown[n]['shares'][:3])})" for n in new[:5])
        note = (
            f"{plural(count, 'other workload')} {'shares' if count == 1 else 'share'} an indicator with incident "
            f"{key[0]}/{key[1]}: {detail}"
            f"{' and more' if len(new) > 5 else ''}. Review them: the same access may have been used again"
        )
        self.events.emit(incident_ref(key[0], body), "RelatedWorkloadsFound", shorten(note, 1000), action="Relate")


def creator_of(body: Mapping[str, Any]) -> str:
    return str((((body.get("status") or {}).get("foothold") or {}).get("creator") or {}).get("username") or "")


def workload_key(state: ClusterState, key: Key) -> tuple[str, str]:
    """(kind, name) of an incident's workload, from the cache."""
    entry = state.incident(*key)
    workload = ((entry.body if entry else {}).get("spec") or {}).get("workload") or {}
    return str(workload.get("kind") or ""), str(workload.get("name") or "")
