"""Unit tests for the canary's cycle (#15) over FakeStorage: the bill and related workloads of open incidents.

What these prove: one Prometheus query per cycle for every open incident; the bill grows by usage x time,
is written through the recorder and stops at release; a workload elsewhere sharing the wallet is listed in
``status.related`` and told once in a RelatedWorkloadsFound Event, and the benign pod gets no write.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minerguard import observability
from minerguard.config import CostSettings, PrometheusSettings
from minerguard.services.canary import Canary
from minerguard.services.events import Events
from tests.unit.test_containment_service import NS, Operator, build, pod_body

pytestmark = pytest.mark.unit

WALLET = "4" + "B" * 94
INCIDENT = "pod-worker-6b7f"


class FakePrometheus:
    def __init__(self) -> None:
        self.queries: list[str] = []
        self.cores = 2.0

    def query(self, promql: str) -> Any:
        self.queries.append(promql)
        return [{"metric": {"namespace": NS, "pod": "worker-6b7f"}, "value": [0, str(self.cores)]}]


def miner() -> dict[str, Any]:
    body = pod_body()
    body["spec"]["containers"][0]["args"] = ["-o", "stratum+tcp://pool.example:3333", "-u", WALLET]
    return body


def canary(op: Operator, prom: FakePrometheus, clock: list[float]) -> Canary:
    return Canary(
        CostSettings(price_per_core_hour=0.05, write_interval=0),
        PrometheusSettings(interval=5),
        op.state,
        op.containment.recorder,
        Events(op.storage),  # type: ignore[arg-type]
        prom,  # type: ignore[arg-type]
        clock=lambda: clock[0],
    )


def test_the_bill_grows_while_open_in_one_query_per_cycle_and_stops_at_release() -> None:
    op = build()
    op.storage.put("Pod", miner())
    op.settle()
    prom, clock = FakePrometheus(), [1000.0]
    c = canary(op, prom, clock)
    before = observability.STOLEN_CPU.labels(NS)._value.get()
    c.cycle()
    clock[0] += 5
    c.cycle()
    op.settle()
    bill = op.incident(INCIDENT)["status"]["cost"]
    assert bill["cpuCoreSeconds"] == 10.0 and bill["currentCores"] == 2.0
    assert bill["estimate"] == f"{10 / 3600 * 0.05:.4f} USD" and bill["pricePerCoreHour"] == "0.05"
    assert len(prom.queries) == 2 and f'namespace=~"{NS}"' in prom.queries[0]
    assert observability.STOLEN_CPU.labels(NS)._value.get() - before == pytest.approx(10.0)
    assert op.incident(INCIDENT)["status"]["state"] == "Contained"  # nothing else changed

    op.storage.patch_incident_spec(NS, INCIDENT, {"release": True})
    op.settle()
    released = copy.deepcopy(op.incident(INCIDENT)["status"])
    assert released["state"] == "Released"
    clock[0] += 5
    c.cycle()
    op.settle()
    assert op.incident(INCIDENT)["status"]["cost"] == released["cost"]
    assert len(prom.queries) == 2  # nothing open: no query


def test_a_workload_elsewhere_with_the_same_wallet_is_related_and_told_once() -> None:
    op = build()
    other = pod_body("helper")
    other["metadata"]["namespace"] = "second"
    other["spec"]["containers"][0] = {"name": "c", "image": "busybox", "command": ["sleep"], "args": [WALLET]}
    op.storage.put("Pod", other)
    op.storage.put("Pod", miner())
    op.settle()
    prom, clock = FakePrometheus(), [1000.0]
    c = canary(op, prom, clock)
    c.cycle()
    clock[0] += 5
    c.cycle()
    op.settle()
    status = op.incident(INCIDENT)["status"]
    assert status["relatedCount"] == 1
    assert status["related"] == [
        {"namespace": "second", "kind": "Pod", "name": "helper", "shares": ["wallet 4BBBBBBB…BBBBBB"]}
    ]
    told = [e for e in op.storage.events if e["reason"] == "RelatedWorkloadsFound"]
    assert len(told) == 1 and "Pod second/helper (wallet 4BBBBBBB…BBBBBB)" in told[0]["note"]
    assert told[0]["note"].startswith("1 other workload shares an indicator with incident ")
    assert told[0]["regarding"]["kind"] == "MinerIncident" and told[0]["type"] == "Warning"
    assert op.storage.calls[("patch", "Pod")] == 1  # the miner's quarantine label only: none for the helper
    helper = op.storage.objects[("Pod", "second", "helper")]
    assert "labels" not in helper["metadata"] or "minerguard.io/quarantined" not in helper["metadata"]["labels"]


def test_without_prometheus_related_workloads_are_still_found_and_no_bill_is_made() -> None:
    op = build()
    op.storage.put("Pod", miner())
    op.settle()
    c = Canary(CostSettings(), PrometheusSettings(), op.state, op.containment.recorder, Events(op.storage), None)  # type: ignore[arg-type]
    c.cycle()
    op.settle()
    assert "cost" not in op.incident(INCIDENT)["status"]


def test_a_growing_related_set_is_written_at_most_once_per_write_interval() -> None:
    """A wallet shared by many miners grows every incident's related set every cycle: the first related workload
    is recorded at once, later ones at most once per write interval (each still told at once in an Event)."""

    def helper(name: str) -> dict[str, Any]:
        body = pod_body(name)
        body["metadata"]["namespace"] = "second"
        body["spec"]["containers"][0] = {"name": "c", "image": "busybox", "command": ["sleep"], "args": [WALLET]}
        return body

    op = build()
    op.storage.put("Pod", helper("helper-0"))
    op.storage.put("Pod", miner())
    op.settle()
    clock = [1000.0]
    c = Canary(
        CostSettings(write_interval=60),
        PrometheusSettings(interval=5),
        op.state,
        op.containment.recorder,
        Events(op.storage),  # type: ignore[arg-type]
        FakePrometheus(),  # type: ignore[arg-type]
        clock=lambda: clock[0],
    )
    c.cycle()
    op.settle()
    assert op.incident(INCIDENT)["status"]["relatedCount"] == 1  # the first: at once
    for i in range(1, 4):  # three more, one a cycle, within the write interval
        op.storage.put("Pod", helper(f"helper-{i}"))
        op.settle()
        clock[0] += 5
        op.storage.calls.clear()
        op.storage.order.clear()
        c.cycle()
        op.settle()
        assert op.storage.calls[("patch", "MinerIncident")] + op.storage.calls[("update", "MinerIncident")] == 0
    assert op.incident(INCIDENT)["status"]["relatedCount"] == 1
    told = [e for e in op.storage.events if e["reason"] == "RelatedWorkloadsFound"]
    assert len(told) == 4  # each new one told at once
    clock[0] += 60
    c.cycle()
    op.settle()
    assert op.incident(INCIDENT)["status"]["relatedCount"] == 4
