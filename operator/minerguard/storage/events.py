"""Reading back the Events minerguard emitted (events.k8s.io/v1), for ``minerguard incident describe``.

Made through :class:`~minerguard.storage.kubernetes.KubeStorage`'s call path (errors, retries,
``minerguard_api_calls_total``) with the caller's credentials. The operator itself never reads Events:
its RBAC grants it only ``create`` on them.
"""

from __future__ import annotations

from typing import Any

from minerguard.storage.kubernetes import REPORTING_CONTROLLER, KubeStorage

PAGE = 500
MAX_PAGES = 20
"""At most this many pages of one namespace's minerguard Events are read (10,000 Events)."""


class EventReader:
    """The operator's Events in a namespace, through the project's storage."""

    def __init__(self, storage: KubeStorage) -> None:
        self.storage = storage

    def list_operator_events(self, namespace: str) -> list[dict[str, Any]]:
        """Every Event in ``namespace`` that minerguard reported (selected by the server on reportingController)."""
        s = self.storage
        selector = f"reportingController={REPORTING_CONTROLLER}"
        out: list[dict[str, Any]] = []
        token = ""
        for _ in range(MAX_PAGES):
            kwargs: dict[str, Any] = {"field_selector": selector, "limit": PAGE}
            if token:
                kwargs["_continue"] = token
            page = s._plain(s._call(f"list Event {namespace}", s.events.list_namespaced_event, namespace, **kwargs))
            out += [item for item in page.get("items") or [] if isinstance(item, dict)]
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                break
        return out
