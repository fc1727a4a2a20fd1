"""The cut comes first (issue #10): a new miner's pod is cut off before its incident is written.

The incident is created after the label and the deny-all, so the containment waits for no write of the
record's; the release check reads the incident cache, complete once its first listing is in. Nothing is
lost: a crash between the cut and the incident leaves a labelled, matched pod, and the next process
creates the incident for it.
"""

from __future__ import annotations

import pytest

from minerguard.domain import incidents as inc
from minerguard.domain import netpol
from tests.unit.test_containment_service import NS, build, pod_body

pytestmark = pytest.mark.unit


class Crash(BaseException):
    """The process dies here (not an API error: nothing in the operator catches it)."""


def test_the_pod_is_cut_before_its_incident_is_written() -> None:
    op = build()
    op.storage.put("Pod", pod_body())
    op.deliver()
    op.drain()
    order = op.storage.order
    assert order.index(("patch", "Pod")) < order.index(("create", "MinerIncident"))
    assert order.index(("create", "NetworkPolicy")) < order.index(("create", "MinerIncident"))
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.CONTAINED


def test_before_the_first_listing_the_incident_is_opened_first() -> None:
    op = build()
    op.state.incidents_listed = False  # the listing failed: an incident not in the cache may exist
    op.storage.put("Pod", pod_body())
    op.deliver()
    op.drain()
    order = op.storage.order
    assert order.index(("create", "MinerIncident")) < order.index(("patch", "Pod"))


def test_a_crash_between_the_cut_and_the_incident_loses_nothing() -> None:
    op = build()
    op.storage.put("Pod", pod_body())
    op.storage.fail_next[("create", "MinerIncident")] = Crash()
    op.deliver()
    with pytest.raises(Crash):
        op.drain()
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert pod["metadata"]["labels"][netpol.QUARANTINE_LABEL] == "true"  # cut
    assert ("MinerIncident", NS, "pod-worker-6b7f") not in op.storage.objects  # not recorded yet
    restarted = build(storage=op.storage)  # a new process: empty caches, the first listing, the watches
    restarted.settle()
    status = restarted.incident("pod-worker-6b7f")["status"]
    assert status["state"] == inc.CONTAINED
    assert status["evidence"]
    assert restarted.storage.calls[("create", "MinerIncident")] == 1
    assert ("patch", "Pod") not in restarted.storage.calls  # the cut stood: nothing to write again
    assert ("create", "NetworkPolicy") not in restarted.storage.calls


def test_an_incident_released_meanwhile_frees_the_pod_it_was_cut_for() -> None:
    """The cache did not show it yet (its watch event on the way): the cut is undone, the release stands."""
    op = build()
    op.storage.put("Pod", pod_body())
    op.settle()
    op.storage.patch_incident_spec(NS, "pod-worker-6b7f", {"release": True})
    op.settle()
    body = op.incident("pod-worker-6b7f")
    assert body["status"]["state"] == inc.RELEASED
    op.state.drop_incident(NS, "pod-worker-6b7f")  # as if its event had not arrived yet
    op.containment.contain(*op.matched("worker-6b7f"))
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert netpol.QUARANTINE_LABEL not in (pod["metadata"].get("labels") or {})
    assert op.incident("pod-worker-6b7f")["status"]["state"] == inc.RELEASED
