"""Large pods are evaluated off kopf's event loop, fairly between namespaces, within a memory budget.

Parsing, hashing and evaluating a pod cost about its container text: microseconds for an ordinary pod,
tens of milliseconds (a second on a loaded machine) for a tenant's megabyte of env. On kopf's event loop
every pod event waits behind that work, so a tenant creating a thousand megabyte pods (issue #11 item 12)
delayed the miner starting next door by minutes. The watch side therefore hands a pod whose text is over
:data:`DEFER_ABOVE` (counted on the raw body, before any parsing) to this backlog, unless it was matched or
quarantined before (its upkeep stays prompt):

- one worker thread takes the pods **round-robin by namespace** (:class:`~minerguard.workqueue.FairLane`),
  so one tenant's flood delays another namespace's large pod by at most one evaluation, and never delays
  a small pod at all (those stay inline, as before);
- a pod queued again before its turn is evaluated once, on its latest body (later events replace it);
- the bodies waiting are bounded by :data:`BACKLOG_BYTES` of container text; a pod that does not fit
  waits as its key only and is read again from the API when its turn comes (the way a compact cache entry
  is evaluated again);
- a pod deleted while it waits is dropped, and one deleted while it is being evaluated is not left in the
  cache;
- the worker rests as long as it evaluated (:data:`DUTY`), so the watch keeps the interpreter half of the
  time at least.

Every pod event of a pod that is waiting here goes here too, so its events are taken in order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from minerguard import observability
from minerguard.services.state import PodKey
from minerguard.workqueue import WorkQueue

DEFER_ABOVE = 8 << 10
"""Characters of container text (command, args, env, ConfigMap data) above which a pod's evaluation is deferred."""

BACKLOG_BYTES = 32 << 20
"""Characters of container text the bodies waiting for their evaluation may hold in all."""

DUTY = 0.5
"""The share of the time the backlog's worker may evaluate: after an evaluation it rests as long as
:data:`DUTY` requires. Python runs one thread at a time, and a thread that evaluates without a break makes
the event loop wait for the interpreter at every read of the watch stream; resting leaves the watch half
of the time at least, so a tenant's megabyte pods delay the next small pod's event less (and their own
evaluations more)."""


@dataclass(frozen=True)
class EvaluatePod:
    """A large pod waiting for its evaluation (its body, if kept, is held by the :class:`Backlog`)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Waiting:
    """What waits for a pod's evaluation: its latest body (None: read it again), its size, and whether to evaluate
    it even if its resourceVersion is known."""

    body: dict[str, Any] | None
    size: int
    again: bool


class Queue(Protocol):
    def add(self, key: Hashable) -> None: ...


Evaluate = Callable[[dict[str, Any], bool], None]
"""Evaluates a pod body inline (the watch side's own evaluation, told not to defer again); the flag: evaluate it
even if its resourceVersion is known (a ConfigMap it reads changed, or it was read again)."""
ReadPod = Callable[[str, str], dict[str, Any] | None]
Forget = Callable[[PodKey], object]
"""Drops a pod from the cache (it was deleted while it was being evaluated)."""


class Backlog:
    """The large pods waiting for an evaluation, and the one being evaluated."""

    def __init__(
        self,
        budget: int = BACKLOG_BYTES,
        queue: Queue | None = None,
        duty: float = DUTY,
        rest: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.budget = budget
        self.duty = duty
        self._rest, self._clock = rest, clock
        self._worker = WorkQueue(self.run, workers=1, name="evaluate") if queue is None else None
        self.queue: Queue = queue or self._worker  # type: ignore[assignment]
        """Where :class:`EvaluatePod` items go; its worker calls :meth:`run` (a unit test drains its own)."""
        self.evaluate: Evaluate | None = None
        self.read_pod: ReadPod | None = None
        self.forget_pod: Forget | None = None
        self._lock = threading.Lock()
        self._bodies: dict[PodKey, Waiting] = {}
        self._bytes = 0
        self._running: dict[PodKey, bool] = {}
        """Pods being evaluated now, and whether each was deleted meanwhile."""

    @property
    def enabled(self) -> bool:
        return self.evaluate is not None

    def start(self) -> None:
        if self._worker is not None:
            self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    def holds(self, key: PodKey) -> bool:
        """Whether the pod waits here or is being evaluated (its next events come here too, in order)."""
        with self._lock:
            return key in self._bodies or key in self._running

    def defer(self, key: PodKey, pod: dict[str, Any], size: int, again: bool = False) -> None:
        """Queue the pod's evaluation on this body (``size``: its container text), replacing one that waited."""
        with self._lock:
            old = self._bodies.pop(key, None)
            if old is not None:
                self._bytes -= old.size
                again = again or old.again
            if self._bytes + size <= self.budget:
                self._bodies[key] = Waiting(pod, size, again)
                self._bytes += size
            else:
                self._bodies[key] = Waiting(None, 0, True)  # over budget: read again when its turn comes
                observability.BACKLOG_READS_AGAIN.inc()
            observability.BACKLOG_PODS.set(len(self._bodies))
        observability.EVALUATIONS_DEFERRED.inc()
        self.queue.add(EvaluatePod(*key))

    def deleted(self, key: PodKey) -> None:
        """The pod is gone: forget its waiting body; if it is being evaluated, its result is dropped."""
        with self._lock:
            old = self._bodies.pop(key, None)
            self._bytes -= old.size if old is not None else 0
            if key in self._running:
                self._running[key] = True
            observability.BACKLOG_PODS.set(len(self._bodies))

    def run(self, item: Hashable) -> None:
        """Evaluate one waiting pod (the worker's work)."""
        assert isinstance(item, EvaluatePod) and self.evaluate is not None
        key: PodKey = (item.namespace, item.name)
        with self._lock:
            if key not in self._bodies:
                return  # deleted while it waited
            waiting = self._bodies.pop(key)
            self._bytes -= waiting.size
            self._running[key] = False
            observability.BACKLOG_PODS.set(len(self._bodies))
        try:
            pod = waiting.body
            if pod is None and self.read_pod is not None:
                pod = self._read(key)
            if pod is not None:
                started = self._clock()
                self.evaluate(pod, waiting.again)
                self._rest((self._clock() - started) * (1 - self.duty) / self.duty)
        finally:
            with self._lock:
                gone = self._running.pop(key, False)
            if gone and self.forget_pod is not None:
                self.forget_pod(key)

    def _read(self, key: PodKey) -> dict[str, Any] | None:
        """The pod read again from the API; on a failure it waits again (the queue retries it) and the error rises."""
        assert self.read_pod is not None
        try:
            return self.read_pod(*key)
        except Exception:
            with self._lock:
                if key not in self._bodies and not self._running.get(key, False):
                    self._bodies[key] = Waiting(None, 0, True)
            raise
