#!/usr/bin/env python3
"""Hot-path cost of detection on very large pods: ``workload_from_pod`` + ``evaluate``.

    .venv/bin/python bench/eval_bench.py [--repeat N] [--profile SHAPE] [--src DIR] [--pack DIR] [--mix]

For every pod watch event the operator calls :func:`minerguard.models.workload_from_pod`
and then :func:`minerguard.detection.evaluate` for every ready policy. This script builds
hostile pods of several shapes (megabytes of env, 1000 containers, 100k args items, 64 KiB
values, deeply nested junk), each with a miner signal in its first container, and prints,
per shape, the JSON size of the pod, the best wall time over ``--repeat`` runs of the hot
path against the 6 policies of the default pack (manifests/policies/), the peak memory the
hot path allocates (tracemalloc, one separate run), and whether the miner was still found.

``--profile SHAPE`` prints the top of a cProfile of one run instead. ``--src DIR`` imports
minerguard from another source folder (for example an older checkout's ``operator/``), and
``--pack DIR`` reads the policies from another folder, to compare. No timing figure is
asserted anywhere; the unit tests check only that the caps hold.

``--images`` times the hot path with image configs attached (:data:`IMAGE_SHAPES`: hostile configs of
about 0.5 MB with thousands of history steps, one per container or shared by 50 containers, and an
ordinary one) against the pack's policies, which read image configs (``signals.imageConfig``).

``--mix`` measures evaluation time *per pod* instead: the median and 99th percentile of the
hot path over an ordinary mix (:data:`MIX_SIZE` pods built from everyday shapes: web servers,
JVM services with long option strings, service-mesh sidecars, init scripts, jobs, system
DaemonSets, pods reading ConfigMaps) and over hostile pods (the shapes above, and evasive
ones: nested shells and encodings, many substitutions, a 1 MiB value), each hostile shape
timed ``--repeat`` times.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import string
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
_SRC = sys.argv[sys.argv.index("--src") + 1] if "--src" in sys.argv[:-1] else str(ROOT / "operator")
sys.path.insert(0, _SRC)

try:  # the layout after issue #10: the preparation of a pod is explicit, shared by its policies
    from minerguard.domain.detection import evaluate, prepare
    from minerguard.domain.policy import Policy, parse_policy
    from minerguard.domain.workload import workload_from_pod
except ImportError:  # an older checkout (--src): it shares the preparation itself (a module cache)
    from minerguard.detection import evaluate  # type: ignore[no-redef]
    from minerguard.models import Policy, parse_policy, workload_from_pod  # type: ignore[no-redef]

    prepare = None  # type: ignore[assignment]

MINER = {"name": "miner", "image": "alpine:3.20", "command": ["/tmp/xmrig"], "args": ["-o", "stratum+tcp://pool:3333"]}
TEXT = string.ascii_letters + string.digits + " :/.-=_,;|"


_PACK = sys.argv[sys.argv.index("--pack") + 1] if "--pack" in sys.argv[:-1] else str(ROOT / "manifests" / "policies")


def load_pack() -> list[Policy]:
    policies = []
    for path in sorted(Path(_PACK).glob("*.yaml")):
        policies += [parse_policy(doc) for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return policies


def junk(rng: random.Random, size: int) -> str:
    return "".join(rng.choices(TEXT, k=size))


def pod(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big", "namespace": "apps", "uid": "u1"},
        "spec": {"containers": [MINER, *containers], **extra},
    }


def env_heavy(rng: random.Random) -> dict[str, Any]:
    """4 containers x 2000 env vars of 300 characters: about 2.5 MB of env."""
    return pod(
        [
            {
                "name": f"c{c}",
                "image": "app:1",
                "env": [{"name": f"V{i}", "value": junk(rng, 300)} for i in range(2000)],
            }
            for c in range(4)
        ]
    )


def many_containers(rng: random.Random) -> dict[str, Any]:
    """1000 containers, each with a shell script, 20 args and 20 env vars: about 3 MB."""
    return pod(
        [
            {
                "name": f"c{c}",
                "image": f"registry.example/app{c}:1",
                "command": ["sh", "-c", f"cd /app && ./run --port {c} | tee /var/log/{c}.log"],
                "args": [junk(rng, 40) for _ in range(20)],
                "env": [{"name": f"V{i}", "value": junk(rng, 80)} for i in range(20)],
            }
            for c in range(999)
        ]
    )


def huge_args(rng: random.Random) -> dict[str, Any]:
    """One container with a 100k-item args list: about 2.3 MB."""
    words = [junk(rng, 20) for _ in range(1000)]
    return pod(
        [{"name": "big", "image": "app:1", "command": ["python"], "args": [words[i % 1000] for i in range(100_000)]}]
    )


def long_values(rng: random.Random) -> dict[str, Any]:
    """8 containers with 64 KiB args and env values (4 + 4 each): about 4 MB."""
    return pod(
        [
            {
                "name": f"c{c}",
                "image": "app:1",
                "args": [junk(rng, 65536) for _ in range(4)],
                "env": [{"name": f"V{i}", "value": junk(rng, 65536)} for i in range(4)],
            }
            for c in range(8)
        ]
    )


def dense_tokens(rng: random.Random) -> dict[str, Any]:
    """50 containers of short tokens that look like hosts, ports, options and words: about 2 MB."""
    hosts = [f"h{i}.example.com:{1000 + i}" for i in range(500)]
    return pod(
        [
            {
                "name": f"c{c}",
                "image": "app:1",
                "command": ["sh", "-c", " ; ".join(f"run{i} --x={i} {hosts[i]}" for i in range(100))],
                "args": [f"--opt{i}={rng.choice(hosts)} w{i} x{i} y{i}" for i in range(300)],
                "env": [{"name": f"V{i}", "value": f"{rng.choice(hosts)} k{i}=v{i} a b c d e"} for i in range(300)],
            }
            for c in range(50)
        ]
    )


def many_words(rng: random.Random) -> dict[str, Any]:
    """50 containers x 1000 args of four distinct words and 200 host:port env values: about 1.9 MB."""
    return pod(
        [
            {
                "name": f"c{c}",
                "image": "app:1",
                "command": ["app"],
                "args": [f"w{rng.randrange(10**6)} x{rng.randrange(10**6)} y{i} z{c}" for i in range(1000)],
                "env": [{"name": f"V{i}", "value": f"u{rng.randrange(10**9)}:{i} v{i}"} for i in range(200)],
            }
            for c in range(50)
        ]
    )


def miner_everywhere(rng: random.Random) -> dict[str, Any]:
    """20 containers where nearly every value matches some indicator of the pack: about 1.9 MB."""
    wallet = "4" + "A" * 94

    def container(c: int) -> dict[str, Any]:
        pools = [f"stratum+tcp://p{i}.nanopool.org:{i}" for i in range(1000)]
        return {
            "name": f"c{c}",
            "image": "xmrig/xmrig",
            "command": ["sh", "-c", "xmrig --donate-level 1 -o stratum+tcp://supportxmr.com:3333"],
            "args": ["--coin=monero", wallet]
            + [f"w{rng.randrange(10**6)} x{rng.randrange(10**6)} y{i} z{c} {pools[i]}" for i in range(1000)],
            "env": [
                {"name": f"V{i}", "value": f"u{rng.randrange(10**9)}.moneroocean.stream:{i} v{i} {wallet}"}
                for i in range(200)
            ],
        }

    return pod([container(c) for c in range(20)])


def deep_junk(rng: random.Random) -> dict[str, Any]:
    """Unknown fields nested 5000 deep and wrong types everywhere, plus 1 MB of env."""
    nested: Any = "bottom"
    for _ in range(5000):
        nested = {"x": [nested, 1, None]}
    container = {"name": "c", "image": ["not", "a", "string"], "command": 42, "args": {"a": 1}, "junk": nested}
    container["env"] = [{"name": f"V{i}", "value": junk(rng, 250)} for i in range(4000)] + [7, "x", None]
    return pod([container], volumes="not a list", junk=nested)


SHAPES: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "env-2.5MB": env_heavy,
    "1000-containers": many_containers,
    "100k-args": huge_args,
    "64KiB-values": long_values,
    "dense-tokens": dense_tokens,
    "many-words": many_words,
    "miner-everywhere": miner_everywhere,
    "deep-junk": deep_junk,
}


def evasive(rng: random.Random) -> dict[str, Any]:
    """Nested shells, wrappers, base64 stages, substitutions and a 1 MiB padded value: about 1.2 MB."""
    import base64

    stage = "nohup nice -n 19 sh -c 'exec xmrig -o pool.supportxmr.com:3333'"
    for _ in range(4):
        stage = f"echo {base64.b64encode(stage.encode()).decode()} | base64 -d | sh"
    step = "X{i}=$(printf '\\x61\\x62'); eval \"echo $X{i}\" | xargs -n1 timeout 1 true"
    script = " ; ".join(step.format(i=i) for i in range(2000))
    return pod(
        [
            {"name": "evasive", "image": "app:1", "command": ["sh", "-c", stage]},
            {"name": "subs", "image": "app:1", "command": ["bash", "-c", script]},
            {"name": "padded", "image": "app:1", "args": ["sh", "-c", ": " + junk(rng, 1 << 20) + "; xmrig"]},
        ]
    )


def config_blobs(rng: random.Random) -> dict[str, Any]:
    """200 env values of 4 KiB JSON-looking text: about 0.9 MB."""
    blob = lambda i: json.dumps({f"k{j}": junk(rng, 30) for j in range(100)})  # noqa: E731
    return pod([{"name": "cfg", "image": "app:1", "env": [{"name": f"J{i}", "value": blob(i)} for i in range(200)]}])


SHAPES["evasive-1MiB"] = evasive
SHAPES["json-blobs"] = config_blobs


def hostile_history(rng: random.Random, steps: int = 4000) -> bytes:
    """An image config of about 0.5 MB: ``steps`` RUN steps of shell with hosts, ports and options."""
    history = [
        {
            "created_by": f"RUN /bin/sh -c cd /src{i} && ./configure --host=h{i}.example.com:{1000 + i} "
            f"&& make -j4 {junk(rng, 40).replace(chr(39), '')} # buildkit"
        }
        for i in range(steps)
    ]
    config = {"Entrypoint": ["/app/run"], "Env": [f"V{i}={junk(rng, 60)}" for i in range(100)]}
    return json.dumps({"architecture": "amd64", "os": "linux", "config": config, "history": history}).encode()


def ordinary_image(rng: random.Random) -> bytes:
    """An nginx-like image config: a dozen history steps."""
    history = [{"created_by": f"RUN /bin/sh -c set -x && apt-get install -y pkg{i} # buildkit"} for i in range(12)]
    config = {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"], "Env": ["PATH=/bin"]}
    return json.dumps({"architecture": "amd64", "os": "linux", "config": config, "history": history}).encode()


IMAGE_SHAPES: dict[str, tuple[Callable[[random.Random], bytes], int]] = {
    "image-4000-steps": (hostile_history, 1),
    "50x-image-4000": (hostile_history, 50),
    "image-ordinary": (ordinary_image, 1),
}
"""name: (image config builder, containers using it besides the miner)."""


def image_workload(config_blob: bytes, containers: int) -> Any:
    """The workload of a pod whose containers (besides the miner) run an image with this config."""
    from dataclasses import replace

    from minerguard.domain.oci import parse_config

    config = parse_config(config_blob)
    body = pod([{"name": f"c{c}", "image": "registry.example/app:1"} for c in range(containers)])
    wl = workload_from_pod(body)
    views = tuple(c if c.name == "miner" else replace(c, image_config=config) for c in wl.containers)
    return replace(wl, containers=views)


def forget_images() -> None:
    """Drop what detection keeps of image histories from one pod to the next (a first evaluation)."""
    from minerguard.domain.detection import findings

    getattr(findings, "_history_read", {}).clear()


def images(policies: list[Policy], repeat: int) -> None:
    """Per shape: the first evaluation of a pod on the image (cold), then the best of ``repeat`` more
    evaluations of pods on the same image (what every later pod event costs)."""
    print(f"{'image shape':<18}{'config MB':>10}{'first s':>10}{'again s':>10}{'peak MiB':>10}  miner found")
    for name, (build, containers) in IMAGE_SHAPES.items():
        blob = build(random.Random(1))
        wl = image_workload(blob, containers)
        forget_images()
        start = time.perf_counter()
        evaluate_workload(policies, wl)
        first = time.perf_counter() - start
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            found = evaluate_workload(policies, wl)
            best = min(best, time.perf_counter() - start)
        forget_images()
        tracemalloc.start()
        evaluate_workload(policies, wl)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"{name:<18}{len(blob) / 1e6:>10.2f}{first:>10.3f}{best:>10.3f}{peak:>10.1f}  {found}")


MIX_SIZE = 1000


def ordinary(rng: random.Random, index: int) -> dict[str, Any]:
    """One everyday pod (see --mix), varied by index and rng."""
    kind = index % 7
    name = f"app{index}"
    env = [{"name": f"SETTING_{i}", "value": junk(rng, rng.randrange(4, 60))} for i in range(rng.randrange(3, 25))]
    if kind == 0:
        containers = [{"name": "web", "image": f"nginx:1.{index % 27}", "ports": [{"containerPort": 80}], "env": env}]
    elif kind == 1:
        opts = " ".join(f"-D{junk(rng, 8)}={junk(rng, 12)}" for _ in range(30))
        containers = [
            {
                "name": "svc",
                "image": "eclipse-temurin:21",
                "command": ["java"],
                "args": ["-Xmx512m", "-jar", "/app/app.jar", "--server.port=8080"],
                "env": [*env, {"name": "JAVA_OPTS", "value": opts}],
            }
        ]
    elif kind == 2:
        containers = [
            {"name": "app", "image": "example/api:3", "env": env},
            {
                "name": "istio-proxy",
                "image": "istio/proxyv2:1.22",
                "args": [
                    "proxy",
                    "sidecar",
                    "--domain",
                    "$(POD_NAMESPACE).svc.cluster.local",
                    "--proxyLogLevel=warning",
                    "--concurrency",
                    "2",
                ],
                "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
            },
        ]
    elif kind == 3:
        containers = [
            {
                "name": "app",
                "image": "example/worker:1",
                "command": [
                    "sh",
                    "-c",
                    "until nslookup db.default.svc; do echo waiting; sleep 2; done; exec /app/worker --queue=jobs",
                ],
                "env": env,
            }
        ]
    elif kind == 4:
        containers = [
            {
                "name": "job",
                "image": "python:3.12",
                "command": ["python", "-m", "etl"],
                "args": [
                    f"--date=2026-12-{index % 28 + 1:02d}",
                    "--source=s3://bucket/in",
                    "--dest=postgres://db:5432/x",
                ],
                "envFrom": [{"configMapRef": {"name": "etl-config"}}],
            }
        ]
    elif kind == 5:
        containers = [
            {
                "name": "kube-proxy",
                "image": "registry.k8s.io/kube-proxy:v1.30.0",
                "command": [
                    "/usr/local/bin/kube-proxy",
                    "--config=/var/lib/kube-proxy/config.conf",
                    "--hostname-override=$(NODE_NAME)",
                ],
                "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            }
        ]
    else:
        containers = [
            {
                "name": "app",
                "image": "example/app:2",
                "env": env,
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}],
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "uid": f"u{index}"},
        "spec": {"containers": containers, "volumes": [{"name": "cfg", "configMap": {"name": "app-config"}}]},
    }


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def mix(policies: list[Policy], repeat: int) -> None:
    rng = random.Random(7)
    bodies = [ordinary(rng, i) for i in range(MIX_SIZE)]
    for body in bodies[:50]:  # warm-up: pattern caches, imports
        hot_path(policies, body)
    times = []
    for body in bodies:
        start = time.perf_counter()
        hot_path(policies, body)
        times.append(time.perf_counter() - start)
    p50, p99 = percentiles(times)
    print(f"ordinary mix: {MIX_SIZE} pods, per pod p50 {p50 * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us")
    hostile: list[float] = []
    for name, build in SHAPES.items():
        body = build(random.Random(1))
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            found = hot_path(policies, body)
            runs.append(time.perf_counter() - start)
        hostile += runs
        print(f"  hostile {name:<18} worst {max(runs):.3f} s  miner found {found}")
    p50, p99 = percentiles(hostile)
    print(f"hostile pods: {len(SHAPES)} shapes x {repeat} runs, per pod p50 {p50:.3f} s, p99 {p99:.3f} s")


def hot_path(policies: list[Policy], body: dict[str, Any]) -> bool:
    return evaluate_workload(policies, workload_from_pod(body))


def evaluate_workload(policies: list[Policy], workload: Any) -> bool:
    if prepare is None:
        verdicts = [evaluate(policy, workload, {}) for policy in policies]
    else:
        prepared = prepare(workload)
        verdicts = [evaluate(policy, workload, {}, prepared=prepared) for policy in policies]
    return any(v.matched and any(e.container == "miner" for e in v.evidence) for v in verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", choices=sorted(SHAPES))
    parser.add_argument("--src", help="folder to import minerguard from (default: this checkout's operator/)")
    parser.add_argument("--pack", help="folder of the policies (default: this checkout's manifests/policies/)")
    parser.add_argument("--mix", action="store_true", help="per-pod p50/p99 on an ordinary mix and on hostile pods")
    parser.add_argument("--images", action="store_true", help="the hot path with hostile image configs attached")
    args = parser.parse_args()
    policies = load_pack()
    if args.images:
        print(f"minerguard from {_SRC}: {len(policies)} policies; best of {args.repeat} runs")
        images(policies, args.repeat)
        return
    if args.mix:
        print(f"minerguard from {_SRC}, policies from {_PACK}: {len(policies)} policies")
        mix(policies, args.repeat)
        return
    if args.profile:
        body = SHAPES[args.profile](random.Random(1))
        profiler = cProfile.Profile()
        profiler.runcall(hot_path, policies, body)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return
    print(f"minerguard from {_SRC}: {len(policies)} policies; best of {args.repeat} runs")
    print(f"{'shape':<18}{'pod MB':>8}{'seconds':>10}{'peak MiB':>10}  miner found")
    for name, build in SHAPES.items():
        body = build(random.Random(1))
        size = len(json.dumps(body, default=str)) / 1e6 if name != "deep-junk" else float("nan")
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            found = hot_path(policies, body)
            best = min(best, time.perf_counter() - start)
        tracemalloc.start()
        hot_path(policies, body)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"{name:<18}{size:>8.2f}{best:>10.3f}{peak:>10.1f}  {found}")


if __name__ == "__main__":
    main()
