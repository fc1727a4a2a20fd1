"""kopf handlers: wiring only. Each one hands the watch event to a service and returns.

Only *event* handlers are used, never create/update/resume handlers, daemons or
timers: those make kopf persist its state (annotations, finalizers) on the objects,
and the operator must not write to pods it does not match. Posting of kopf's own
Events is off for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from minerguard.services.app import App

log = logging.getLogger(__name__)


def app_of(memo: Any) -> App:
    app = memo.get("app") if isinstance(memo, dict) else getattr(memo, "app", None)
    if not isinstance(app, App):
        raise kopf.PermanentError("minerguard is not initialised")
    return app


@kopf.on.startup()
async def startup(memo: kopf.Memo, **_: Any) -> None:
    app_of(memo).start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await asyncio.to_thread(app_of(memo).stop)


@kopf.on.probe(id="policies")
def probe_policies(memo: kopf.Memo, **_: Any) -> int:
    return len(app_of(memo).policies.ready())


@kopf.on.event("v1", "pods")
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    # Inline for an ordinary pod: its evaluation is microseconds, and a thread hop would queue every pod
    # of a 10,000-pod initial listing in memory at once. A large pod is handed to the detector's
    # backlog (a worker thread, fair between namespaces, bounded in memory) after a parse and a hash.
    app_of(memo).detector.observe_pod(event.get("type"), dict(event["object"]))


@kopf.on.event("v1", "namespaces")
async def namespace_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    await asyncio.to_thread(app_of(memo).detector.observe_namespace, event.get("type"), dict(event["object"]))


@kopf.on.event("v1", "configmaps")
async def configmap_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    # A thread: a changed ConfigMap has the pods that use it read again from the API.
    await asyncio.to_thread(app_of(memo).configmaps.observe, event.get("type"), dict(event["object"]))


@kopf.on.event("v1", "nodes")
async def node_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    app_of(memo).detector.observe_node(event.get("type"), dict(event["object"]))


@kopf.on.event("minerguard.io", "v1alpha1", "minerpolicies")
async def policy_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    await asyncio.to_thread(app_of(memo).detector.observe_policy, event.get("type"), dict(event["object"]))


@kopf.on.event("minerguard.io", "v1alpha1", "minerincidents")
async def incident_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    await asyncio.to_thread(app_of(memo).detector.observe_incident, event.get("type"), dict(event["object"]))


@kopf.on.event("networking.k8s.io", "v1", "networkpolicies")
async def networkpolicy_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    app_of(memo).detector.observe_network_policy(event.get("type"), dict(event["object"]))
