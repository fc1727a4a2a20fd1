"""The attacker has edit rights in its own namespace: undoing a quarantine does not stick.

Each test contains a miner, then undoes part of the containment the way a namespace admin could,
and checks that the operator restores it and says so with a Warning Event.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from minerguard.domain import netpol
from tests.e2e.helpers import eventually, kubectl, record
from tests.e2e.objects import incident_in_state, isolation_problems, miner_pod, network_policy, quarantined, reasons
from tests.e2e.operator_proc import OperatorProcess


def contained_miner(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, make_policy: Any) -> None:
    make_policy(namespace)
    core.create_namespaced_pod(namespace, miner_pod("miner"))
    eventually(lambda: incident_in_state(custom, namespace, "Contained"), 30, "the miner contained")


def restored(core: client.CoreV1Api, networking: client.NetworkingV1Api, namespace: str) -> bool:
    return isolation_problems(core, networking, namespace, "miner") == [] and "QuarantineRestored" in reasons(
        core, namespace, "miner"
    )


def test_removing_the_quarantine_label_is_undone(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    contained_miner(core, custom, namespace, make_policy)
    started = time.monotonic()
    kubectl("label", "pod", "miner", "-n", namespace, f"{netpol.QUARANTINE_LABEL}-")
    eventually(lambda: restored(core, networking, namespace), 10, "the label restored with a Warning Event")
    record("tampering: label removed", seconds_to_restored=round(time.monotonic() - started, 2))
    event = next(
        e
        for e in core.list_namespaced_event(namespace, field_selector="involvedObject.name=miner").items
        if e.reason == "QuarantineRestored"
    )
    assert event.type == "Warning" and "label" in event.message


def test_deleting_or_editing_the_deny_all_policy_is_undone(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    contained_miner(core, custom, namespace, make_policy)
    started = time.monotonic()
    networking.delete_namespaced_network_policy(netpol.QUARANTINE_POLICY, namespace)
    eventually(lambda: restored(core, networking, namespace), 10, "the deny-all policy recreated")
    record("tampering: deny-all deleted", seconds_to_restored=round(time.monotonic() - started, 2))

    kubectl(
        "patch",
        "networkpolicy",
        netpol.QUARANTINE_POLICY,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec": {"egress": [{}]}}',
    )

    def intact() -> bool:
        np = networking.read_namespaced_network_policy(netpol.QUARANTINE_POLICY, namespace)
        return not np.spec.egress and isolation_problems(core, networking, namespace, "miner") == []

    eventually(intact, 10, "the edited deny-all policy restored")
    assert quarantined(core, namespace, "miner")


def test_an_allow_policy_added_later_does_not_reopen_the_pod(
    operator: OperatorProcess,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    make_policy: Any,
) -> None:
    contained_miner(core, custom, namespace, make_policy)
    started = time.monotonic()
    networking.create_namespaced_network_policy(
        namespace,
        network_policy(
            "let-me-out",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
            },
        ),
    )
    eventually(lambda: restored(core, networking, namespace), 10, "the new allow policy excludes the miner")
    record("tampering: allow policy added", seconds_to_restored=round(time.monotonic() - started, 2))
    allow = networking.read_namespaced_network_policy("let-me-out", namespace)
    assert any(
        e.key == netpol.QUARANTINE_LABEL and e.operator == "DoesNotExist"
        for e in allow.spec.pod_selector.match_expressions or []
    )
