"""Which replica acts: the same rule as kopf's peering, for minerguard's own background loops.

kopf pauses its watch handlers on every replica but the one with the highest
priority (and pauses all of them when two share the highest priority). The
periodic loops (resync, policy status, metric cycles) are not kopf handlers, so
they ask this gate, which reads the same ClusterKopfPeering object kopf keeps.
Standalone (no peering), the gate is always open.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from minerguard.errors import KubeError
from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)


def active_by_peering(status: Mapping[str, Any], identity: str, priority: int, now: datetime.datetime) -> bool:
    """kopf's rule: act unless a live peer has a higher priority, or another live peer has the same."""
    for peer_id, info in status.items():
        if peer_id == identity or not isinstance(info, Mapping):
            continue
        try:
            lastseen = datetime.datetime.fromisoformat(str(info.get("lastseen")).replace("Z", "+00:00"))
            if lastseen.tzinfo is None:
                lastseen = lastseen.replace(tzinfo=datetime.UTC)
            lifetime = datetime.timedelta(seconds=int(info.get("lifetime", 60)))
            peer_priority = int(info.get("priority", 0))
        except (TypeError, ValueError):
            continue
        if lastseen + lifetime <= now:
            continue
        if peer_priority >= priority:
            return False
    return True


class ActivityGate:
    def __init__(self, storage: KubeStorage, peering: str, identity: str, priority: int) -> None:
        self.storage = storage
        self.peering = peering
        self.identity = identity
        self.priority = priority

    def active(self) -> bool:
        if not self.peering:
            return True
        try:
            body = self.storage.get_peering(self.peering)
        except KubeError as exc:
            log.debug("Peering %s unreadable (%s): staying passive", self.peering, exc)
            return False
        status = body.get("status") or {}
        if self.identity not in status:
            return False
        return active_by_peering(status, self.identity, self.priority, datetime.datetime.now(datetime.UTC))
