"""Load generator: creates benign pods at a steady rate with a thread pool (a separate process).

Run by ``bench/run.py``; it reads commands on stdin and reports on stdout, one line each:

    stdin:  ``upto N``   create pods until N exist (counting from 0), at ``--rate`` per second
            ``quit``     finish the pods in flight and exit
    stdout: ``created N failed F``   progress, several times a second while creating
            ``reached N failed F``   the target is reached (every create call has returned)

Pods are spread round-robin over ``--namespaces``; the scheduler places them on the KWOK
nodes. Pacing restarts at each ``upto`` so a pause never turns into a burst. A separate
process keeps the load's CPU and GIL away from the process that timestamps containment.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from workloads import benign_pod  # a sibling module: bench/ is on sys.path when this runs as a script


class Loader:
    def __init__(
        self, kubeconfig: str, namespaces: list[str], prefix: str, rate: float, threads: int, registry: str = ""
    ) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = threads
        cfg.retries = False
        api = client.ApiClient(cfg)
        api.user_agent = "mgbench-load/1"
        self.core = client.CoreV1Api(api)
        self.namespaces = namespaces
        self.prefix = prefix
        self.registry = registry
        self.rate = rate
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="create")
        self.slots = threading.BoundedSemaphore(threads * 2)
        self.lock = threading.Lock()
        self.submitted = 0
        self.done = 0
        self.failed = 0
        self.errors: dict[str, int] = {}

    def _create(self, i: int) -> None:
        ns = self.namespaces[i % len(self.namespaces)]
        body = benign_pod(f"{self.prefix}-{i:05d}", i, self.registry)
        ok = False
        for attempt in range(4):
            try:
                self.core.create_namespaced_pod(ns, body, _preload_content=False, _request_timeout=60)
                ok = True
                break
            except ApiException as exc:
                if exc.status == 409:  # created by an earlier attempt whose answer was lost
                    ok = True
                    break
                self._error(f"{exc.status} {exc.reason}")
                if exc.status not in (429, 500, 503, 504):
                    break
            except Exception as exc:  # noqa: BLE001 - counted and retried; the run reports failures
                self._error(type(exc).__name__)
            time.sleep(0.2 * (attempt + 1))
        with self.lock:
            self.done += 1
            self.failed += 0 if ok else 1
        self.slots.release()

    def _error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def upto(self, target: int) -> None:
        start, first = time.monotonic(), self.submitted
        last_report = 0.0
        while self.submitted < target:
            due = start + (self.submitted - first) / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            self.slots.acquire()
            self.pool.submit(self._create, self.submitted)
            self.submitted += 1
            if time.monotonic() - last_report > 0.25:
                self.report("created")
                last_report = time.monotonic()
        while True:
            with self.lock:
                if self.done >= self.submitted:
                    break
            time.sleep(0.05)
        self.report("reached")

    def report(self, word: str) -> None:
        with self.lock:
            done, failed = self.done, self.failed
        print(f"{word} {done} failed {failed}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--namespaces", required=True, help="comma-separated")
    ap.add_argument("--prefix", default="benign")
    ap.add_argument("--rate", type=float, default=40.0, help="pods per second")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--registry", default="", help="host:port whose bench/ images the pods name (--inspect-images)")
    args = ap.parse_args()
    loader = Loader(args.kubeconfig, args.namespaces.split(","), args.prefix, args.rate, args.threads, args.registry)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "upto" and len(words) == 2:
            loader.upto(int(words[1]))
        elif words[0] == "quit":
            break
    loader.pool.shutdown(wait=True)
    if loader.errors:
        print(f"errors {loader.errors}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
