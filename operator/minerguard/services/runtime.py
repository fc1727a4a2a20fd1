"""Runtime events (Falco) in: each one checked, resolved to a pod the operator knows, and kept as evidence.

:meth:`RuntimeEvents.take` receives a parsed :class:`~minerguard.domain.falco.FalcoEvent` (the
HTTP endpoint, :mod:`minerguard.services.falco_http`, parses and authenticates). An event is
ignored, counted and logged when it is stale or dated in the future, a replay of one already
taken, names no pod, or names a pod the operator's watch cache does not hold (or holds under
another uid): such an event never creates anything. Otherwise it is kept with the pod's
other recent events (bounded) and the pod is evaluated again, by the same code as every
watch event (:meth:`~minerguard.services.detector.Detector.reevaluate_keys`); the
Evaluator asks :meth:`findings` for each policy, as it asks the CPU findings. What follows
(incident, Events, actions, guards, Audit mode) is the path of any detection.

Events count as evidence for ``retention`` seconds (default one hour), and only for the pod
(uid) they were taken for: a later pod of the same name does not inherit them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from minerguard import observability
from minerguard.config import FalcoSettings
from minerguard.domain.detection import Evidence
from minerguard.domain.detection.runtime import runtime_findings
from minerguard.domain.falco import FalcoEvent, staleness
from minerguard.domain.policy import Policy
from minerguard.domain.text import printable, shorten
from minerguard.domain.workload import Workload
from minerguard.services.state import ClusterState, PodKey

log = logging.getLogger(__name__)

MAX_EVENTS_PER_POD = 32
MAX_PODS = 10_000
MAX_SEEN = 100_000

ACCEPTED = "accepted"


class RuntimeEvents:
    """The recent runtime events of each known pod."""

    def __init__(
        self,
        state: ClusterState,
        reevaluate: Callable[[set[PodKey]], None],
        settings: FalcoSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.reevaluate = reevaluate
        self.settings = settings or FalcoSettings()
        self.clock = clock
        self._events: OrderedDict[PodKey, deque[tuple[str, FalcoEvent]]] = OrderedDict()
        """Per pod, its events with the uid the pod had when each was taken (a pod of the same name later
        is another pod)."""
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, event: FalcoEvent) -> str:
        """Take one event; ``accepted`` or why it was ignored (``stale``, ``future``, ``replayed``,
        ``no pod``, ``unknown pod``)."""
        outcome = self._admit(event)
        observability.RUNTIME_EVENTS.labels(outcome).inc()
        where = f"Pod {event.namespace}/{event.pod}" if event.pod else "no pod"
        rule = shorten(printable(event.rule), 120)
        if outcome != ACCEPTED:
            log.info("Falco event %r (%s) for %s ignored: %s", rule, event.priority, where, outcome)
            return outcome
        log.info("Falco event %r (%s) for %s taken as runtime evidence", rule, event.priority, where)
        self.reevaluate({(event.namespace, event.pod)})
        return outcome

    def _admit(self, event: FalcoEvent) -> str:
        now = self.clock()
        why = staleness(event, now, self.settings.max_age)
        if why:
            return why
        if not event.pod:
            return "no pod"
        key: PodKey = (event.namespace, event.pod)
        entry = self.state.pod(key)
        if entry is None or (event.pod_uid and entry.workload.uid and event.pod_uid != entry.workload.uid):
            return "unknown pod"
        with self._lock:
            if event.key in self._seen:
                return "replayed"
            self._remember(event.key, now)
            events = self._events.setdefault(key, deque(maxlen=MAX_EVENTS_PER_POD))
            self._events.move_to_end(key)
            events.append((entry.workload.uid, event))
            while len(self._events) > MAX_PODS:
                self._events.popitem(last=False)
        return ACCEPTED

    def _remember(self, key: str, now: float) -> None:
        """Keep the event's key as long as an event of its age can still arrive (max_age), within MAX_SEEN."""
        self._seen[key] = now
        horizon = now - self.settings.max_age - 60.0
        while self._seen and (len(self._seen) > MAX_SEEN or next(iter(self._seen.values())) < horizon):
            self._seen.popitem(last=False)

    def events(self, key: PodKey, uid: str) -> Sequence[FalcoEvent]:
        """The events of the pod ``key`` with ``uid`` that still count as evidence, oldest first."""
        horizon = self.clock() - self.settings.retention
        with self._lock:
            events = self._events.get(key)
            if events is None:
                return ()
            while events and events[0][1].time < horizon:
                events.popleft()
            if not events:
                del self._events[key]
                return ()
            return tuple(event for taken_uid, event in events if taken_uid == uid)

    def findings(self, policy: Policy, wl: Workload) -> Sequence[Evidence]:
        """The ``runtime`` findings of a policy for a pod (none for a policy without ``signals.runtime``)."""
        if policy.runtime is None:
            return ()
        return runtime_findings(policy.runtime, self.events((wl.namespace, wl.name), wl.uid))
