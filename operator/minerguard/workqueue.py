"""A small de-duplicating work queue with worker threads and retry back-off.

Watch handlers only put keys here and return at once; workers do the API calls.
A key queued twice before a worker takes it runs once; a key that is being worked
on when it is queued again runs once more afterwards (so no update is lost). A
failing key is retried with exponential back-off, with a bounded number of tries
before it waits for the next resync.

Both lanes are fair between tenants (a key's tenant is its ``namespace`` attribute, or what
``tenant=`` says): each tenant's keys are served in order, and the tenants take turns, so a
flood of keys from one namespace delays another namespace's next key by at most one key per
busy tenant, not by the whole flood.
"""

from __future__ import annotations

import collections
import heapq
import logging
import threading
import time
from collections.abc import Callable, Hashable

from minerguard.errors import MinerguardError

log = logging.getLogger(__name__)


def namespace_of(key: Hashable) -> str:
    """A key's tenant: its ``namespace`` attribute (every work item has one), else one tenant for all."""
    return str(getattr(key, "namespace", ""))


class FairLane:
    """Keys queued per tenant, served round-robin across tenants and first-in first-out within one."""

    def __init__(self, tenant: Callable[[Hashable], str] = namespace_of) -> None:
        self._tenant = tenant
        self._keys: dict[str, collections.deque[Hashable]] = {}
        self._turns: collections.deque[str] = collections.deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __contains__(self, key: Hashable) -> bool:
        keys = self._keys.get(self._tenant(key))
        return keys is not None and key in keys

    def append(self, key: Hashable) -> None:
        tenant = self._tenant(key)
        keys = self._keys.get(tenant)
        if keys is None:
            keys = self._keys[tenant] = collections.deque()
            self._turns.append(tenant)
        keys.append(key)
        self._size += 1

    def popleft(self) -> Hashable:
        """The next key of the tenant whose turn it is; that tenant goes to the back of the turns."""
        tenant = self._turns.popleft()
        keys = self._keys[tenant]
        key = keys.popleft()
        if keys:
            self._turns.append(tenant)
        else:
            del self._keys[tenant]
        self._size -= 1
        return key

    def remove(self, key: Hashable) -> None:
        tenant = self._tenant(key)
        keys = self._keys[tenant]
        keys.remove(key)
        self._size -= 1
        if not keys:
            del self._keys[tenant]
            self._turns.remove(tenant)


class WorkQueue:
    def __init__(
        self,
        work: Callable[[Hashable], None],
        *,
        workers: int = 4,
        max_retries: int = 8,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        name: str = "work",
        tenant: Callable[[Hashable], str] = namespace_of,
    ) -> None:
        self._work = work
        self._workers = workers
        self._max_retries = max_retries
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._name = name
        self._cond = threading.Condition()
        self._ready = FairLane(tenant)
        self._low = FairLane(tenant)
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._again: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._tries: dict[Hashable, int] = {}
        self._seq = 0
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._workers):
            t = threading.Thread(target=self._run, name=f"{self._name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    def add(self, key: Hashable) -> None:
        with self._cond:
            if key in self._active:
                self._again.add(key)
                return
            if key in self._queued:
                if key in self._low:
                    self._low.remove(key)
                    self._ready.append(key)
                return
            self._queued.add(key)
            self._ready.append(key)
            self._cond.notify()

    def add_low(self, key: Hashable) -> None:
        """Queue behind every normal key (resync work); a no-op for a key already queued or running."""
        with self._cond:
            if key in self._active or key in self._queued:
                return
            self._queued.add(key)
            self._low.append(key)
            self._cond.notify()

    def pending(self) -> int:
        """Keys queued, running or waiting for a retry (the operator reports it as a gauge)."""
        with self._cond:
            return len(self._ready) + len(self._low) + len(self._active) + len(self._delayed)

    def _take(self) -> Hashable | None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, key = heapq.heappop(self._delayed)
                    if key not in self._queued and key not in self._active:
                        self._queued.add(key)
                        self._ready.append(key)
                    elif key in self._active:
                        self._again.add(key)
                if self._ready or self._low:
                    key = self._ready.popleft() if self._ready else self._low.popleft()
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                timeout = (self._delayed[0][0] - now) if self._delayed else None
                self._cond.wait(timeout)
            return None

    def _done(self, key: Hashable, failed: bool) -> None:
        with self._cond:
            self._active.discard(key)
            if failed and key in self._again:
                # Queued again while it ran: the queued run is the retry; no second, delayed chain.
                failed = False
            if failed:
                tries = self._tries.get(key, 0) + 1
                self._tries[key] = tries
                if tries <= self._max_retries:
                    delay = min(self._base_delay * 2 ** (tries - 1), self._max_delay)
                    self._seq += 1
                    heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key))
                else:
                    log.warning("Giving up on %s after %d tries until the next resync", key, tries)
                    self._tries.pop(key, None)
            else:
                self._tries.pop(key, None)
            if key in self._again:
                self._again.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            key = self._take()
            if key is None:
                return
            failed = False
            try:
                self._work(key)
            except MinerguardError as exc:
                failed = True
                log.warning("Work on %s failed (%s); will retry", key, exc)
            except Exception:
                failed = True
                log.exception("Work on %s failed unexpectedly; will retry", key)
            self._done(key, failed)
