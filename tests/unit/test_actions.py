"""Unit tests for every containment action on FakeStorage: apply, idempotence, revert, dry-run, guards, errors."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from minerguard.actions import ACTIONS
from minerguard.actions.base import ActionContext, Outcome
from minerguard.actions.guard import NodeGuard
from minerguard.config import GuardSettings, Settings
from minerguard.domain import guards
from minerguard.domain.incidents import WorkloadRef
from minerguard.domain.workload import workload_from_pod
from minerguard.errors import Conflict
from tests.fakes import FakeStorage

pytestmark = pytest.mark.unit

NS = "apps"
GUARDS = GuardSettings(max_nodes=3, max_percent=100.0, min_schedulable_nodes=1, max_actions_per_hour=100)


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}}, "spec": {}}


def pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "miner", "namespace": NS, "uid": "uid-miner", "labels": {"app": "miner"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox", "command": ["xmrig"]}]},
    }


def context(storage: FakeStorage, settings: Settings | None = None, **kw: Any) -> ActionContext:
    settings = settings or replace(Settings(), guards=GUARDS, enabled_actions=frozenset({"scaleOwner"}))
    body = storage.put("Pod", pod())
    return ActionContext(
        storage,  # type: ignore[arg-type]
        settings,
        workload_from_pod(body),
        body,
        "pod-miner",
        "miners",
        guard=NodeGuard(storage, settings.guards),  # type: ignore[arg-type]
        **kw,
    )


@pytest.fixture
def storage() -> FakeStorage:
    fake = FakeStorage()
    for n in ("node-1", "node-2", "node-3", "node-4"):
        fake.put("Node", node(n))
    return fake


def writes(storage: FakeStorage) -> int:
    return sum(v for (verb, _), v in storage.calls.items() if verb not in ("get", "list"))


# ------------------------------------------------------------------ taint


def test_taint_applies_once_and_reverts(storage: FakeStorage) -> None:
    ctx, taint = context(storage), ACTIONS["taint"]
    first = taint.run(ctx)
    assert (first.result, first.changed) == (Outcome.SUCCEEDED, True)
    assert [t["key"] for t in storage.objects[("Node", "", "node-1")]["spec"]["taints"]] == [guards.TAINT_KEY]
    before = writes(storage)
    again = taint.run(ctx)
    assert (again.result, again.changed, writes(storage)) == (Outcome.SUCCEEDED, False, before)
    assert taint.applied_to(ctx)
    undone = taint.revert(ctx)
    assert undone.changed and storage.objects[("Node", "", "node-1")]["spec"]["taints"] == []
    assert not taint.applied_to(ctx)
    assert not taint.revert(ctx).changed


def test_taint_keeps_a_concurrent_edit_of_the_taints(storage: FakeStorage) -> None:
    """The taint list is written with the resourceVersion read: a conflicting edit is retried, not overwritten."""
    storage.fail_next[("patch", "Node")] = Conflict("patch Node: 409", 409, "Conflict")
    result = ACTIONS["taint"].run(context(storage))
    assert result.result == Outcome.SUCCEEDED
    assert storage.calls[("patch", "Node")] == 2


def test_taint_is_held_back_when_the_guard_says_so(storage: FakeStorage) -> None:
    settings = replace(Settings(), guards=replace(GUARDS, max_nodes=0))
    result = ACTIONS["taint"].run(context(storage, settings))
    assert (result.result, result.guard) == (Outcome.SUPPRESSED, "MaxNodes")
    assert "taints" not in storage.objects[("Node", "", "node-1")]["spec"]


def test_node_actions_need_a_scheduled_pod(storage: FakeStorage) -> None:
    ctx = context(storage)
    ctx.workload = replace(ctx.workload, node_name="")  # type: ignore[type-var]
    for name in ("cordon", "taint"):
        result = ACTIONS[name].run(ctx)
        assert result.result == Outcome.FAILED and "not scheduled" in result.message


# ------------------------------------------------------------------ scaleOwner


def owned(storage: FakeStorage, kind: str, spec: dict[str, Any], settings: Settings | None = None) -> ActionContext:
    storage.put(kind, {"kind": kind, "metadata": {"name": "web", "namespace": NS}, "spec": spec})
    # The operator opens the incident before it runs actions; scaleOwner keeps its record there.
    storage.put("MinerIncident", {"metadata": {"name": "pod-miner", "namespace": NS}, "spec": {}, "status": {}})
    return context(storage, settings, owner=WorkloadRef("apps/v1", kind, "web", "uid-web"))


def test_scale_owner_trusts_no_annotation_and_undoes_a_scale_up(storage: FakeStorage) -> None:
    """A tenant's pre-set scaled-by annotation is not minerguard's record; a later scale-up is put back to 0."""
    ctx, scale = owned(storage, "Deployment", {"replicas": 2}), ACTIONS["scaleOwner"]
    storage.objects[("Deployment", NS, "web")]["metadata"]["annotations"] = {
        "minerguard.io/scaled-by": f"{NS}/pod-miner"
    }
    assert scale.run(ctx).changed
    assert storage.objects[("Deployment", NS, "web")]["spec"]["replicas"] == 0
    assert storage.objects[("MinerIncident", NS, "pod-miner")]["status"]["scaledOwner"]["replicasBefore"] == 2
    storage.objects[("Deployment", NS, "web")]["spec"]["replicas"] = 5  # the tenant scales it up again
    again = scale.run(ctx)
    assert again.changed and again.tampered and storage.objects[("Deployment", NS, "web")]["spec"]["replicas"] == 0
    scale.revert(ctx)
    assert storage.objects[("Deployment", NS, "web")]["spec"]["replicas"] == 2  # the count before minerguard


def test_scale_owner_scales_to_zero_once_and_back(storage: FakeStorage) -> None:
    ctx, scale = owned(storage, "Deployment", {"replicas": 3}), ACTIONS["scaleOwner"]
    first = scale.run(ctx)
    assert (first.result, first.changed) == (Outcome.SUCCEEDED, True)
    assert storage.objects[("Deployment", NS, "web")]["spec"]["replicas"] == 0
    before = writes(storage)
    assert not scale.run(ctx).changed and writes(storage) == before
    assert scale.revert(ctx).changed
    deployment = storage.objects[("Deployment", NS, "web")]
    assert deployment["spec"]["replicas"] == 3
    assert not (deployment["metadata"].get("annotations") or {})
    assert not scale.applied_to(ctx)


def test_scale_owner_holds_back_a_large_owner(storage: FakeStorage) -> None:
    settings = replace(
        Settings(), guards=replace(GUARDS, max_scale_replicas=2), enabled_actions=frozenset({"scaleOwner"})
    )
    result = ACTIONS["scaleOwner"].run(owned(storage, "Deployment", {"replicas": 3}, settings))
    assert (result.result, result.guard) == (Outcome.SUPPRESSED, "MaxScaleReplicas")
    assert storage.objects[("Deployment", NS, "web")]["spec"]["replicas"] == 3


def test_scale_owner_suspends_and_resumes_a_cronjob(storage: FakeStorage) -> None:
    ctx, scale = owned(storage, "CronJob", {"schedule": "* * * * *"}), ACTIONS["scaleOwner"]
    assert scale.run(ctx).changed
    assert storage.objects[("CronJob", NS, "web")]["spec"]["suspend"] is True
    scale.revert(ctx)
    assert storage.objects[("CronJob", NS, "web")]["spec"]["suspend"] is False


def test_scale_owner_does_not_apply_to_a_bare_pod_or_a_daemonset(storage: FakeStorage) -> None:
    bare = context(storage, owner=WorkloadRef("v1", "Pod", "miner", "uid-miner"))
    assert ACTIONS["scaleOwner"].run(bare).result == Outcome.FAILED
    daemon = owned(storage, "DaemonSet", {})
    result = ACTIONS["scaleOwner"].run(daemon)
    assert result.result == Outcome.FAILED and "cannot be scaled" in result.message


# ------------------------------------------------------------------ every action


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_dry_run_plans_and_writes_nothing(storage: FakeStorage, name: str) -> None:
    storage.put("Deployment", {"kind": "Deployment", "metadata": {"name": "web", "namespace": NS}, "spec": {}})
    ctx = context(storage, dry_run=True, owner=WorkloadRef("apps/v1", "Deployment", "web", "uid-web"))
    storage.calls.clear()
    result = ACTIONS[name].run(ctx)
    assert result.result == Outcome.DRY_RUN and result.message.startswith("would ")
    assert writes(storage) == 0


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_declares_its_scope_rbac_and_events(name: str) -> None:
    action = ACTIONS[name]
    assert action.description and action.rbac and action.events
    assert action.scope.value in ("Pod", "Node", "Owner")
