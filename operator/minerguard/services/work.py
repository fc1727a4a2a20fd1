"""The work items of the containment queue, one type per kind of work.

Items are small, frozen and hashable: the queue keeps one of each pending, so a burst of
events for one pod costs one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from minerguard.domain.workload import OwnerRef


@dataclass(frozen=True)
class ContainPod:
    """Read the pod, evaluate it again, and contain it if it still matches (or verify it still is)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class PodGone:
    """A matched pod was deleted: record it in its incident."""

    namespace: str
    name: str
    uid: str
    owner: OwnerRef | None = None
    """The pod's controller, to find its incident."""
    incident: str = ""
    """The incident the pod was contained under (its annotation), when it was."""


@dataclass(frozen=True)
class ReleaseIncident:
    """A person asked to release this incident."""

    namespace: str
    name: str


WorkItem = ContainPod | PodGone | ReleaseIncident
