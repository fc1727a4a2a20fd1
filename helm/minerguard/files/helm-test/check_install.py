#!/usr/bin/env python3
"""The `helm test` check of the minerguard chart: the operator's pods are Ready and its CRDs are served.

The chart's test Job runs this file with the operator image, as the operator's
ServiceAccount (in-cluster config). tests/e2e/test_chart.py runs the same file, with the
same arguments, against the local cluster as that same ServiceAccount (a token from the
TokenRequest API in a kubeconfig), because in the KWOK cluster the Job's container never
runs. It only reads (lists), which the operator's ClusterRole allows.

Exit status 0 when every check holds before the deadline, 1 otherwise (with the reasons).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def load_config() -> None:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def crd_problems(name: str) -> list[str]:
    """Why the CRD ``name`` is not served yet (empty when it is): Established, and its objects can be listed."""
    crds = client.ApiextensionsV1Api().list_custom_resource_definition(field_selector=f"metadata.name={name}").items
    if not crds:
        return [f"CRD {name} does not exist"]
    crd = crds[0]
    conditions = {c.type: c.status for c in (crd.status.conditions or [])} if crd.status else {}
    if conditions.get("Established") != "True":
        return [f"CRD {name} is not Established (conditions {conditions})"]
    served = [v.name for v in crd.spec.versions if v.served]
    if not served:
        return [f"CRD {name} serves no version"]
    group, plural = crd.spec.group, crd.spec.names.plural
    try:
        client.CustomObjectsApi().list_cluster_custom_object(group, served[0], plural, limit=1)
    except ApiException as exc:
        return [f"listing {plural}.{group}/{served[0]} failed: {exc.status} {exc.reason}"]
    return []


def pod_problems(namespace: str, selector: str, replicas: int) -> list[str]:
    """Why fewer than ``replicas`` of the operator's pods are Ready (empty when enough are)."""
    pods = client.CoreV1Api().list_namespaced_pod(namespace, label_selector=selector).items
    ready: list[str] = []
    for pod in pods:
        if pod.metadata.deletion_timestamp is not None:
            continue
        conditions: list[Any] = (pod.status.conditions or []) if pod.status else []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            ready.append(pod.metadata.name)
    if len(ready) < replicas:
        return [f"{len(ready)} of {replicas} operator pods Ready in {namespace} ({selector}); pods: {len(pods)}"]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--namespace", required=True, help="the release namespace")
    ap.add_argument("--selector", required=True, help="label selector of the operator's pods")
    ap.add_argument("--replicas", type=int, default=1, help="how many must be Ready")
    ap.add_argument("--crd", action="append", default=[], help="a CRD that must be served (repeatable)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for everything to hold")
    args = ap.parse_args(argv)

    load_config()
    deadline = time.monotonic() + args.timeout
    pause = threading.Event()
    while True:
        problems: list[str] = []
        try:
            for name in args.crd:
                problems += crd_problems(name)
            problems += pod_problems(args.namespace, args.selector, args.replicas)
        except ApiException as exc:
            problems.append(f"API error: {exc.status} {exc.reason}")
        if not problems:
            print(f"OK: {args.replicas} operator pod(s) Ready in {args.namespace}; served: {', '.join(args.crd)}")
            return 0
        if time.monotonic() >= deadline:
            print("FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        pause.wait(2.0)


if __name__ == "__main__":
    sys.exit(main())
