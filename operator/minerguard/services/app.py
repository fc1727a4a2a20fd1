"""The operator application: builds the services once and runs their background loops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from minerguard import observability
from minerguard.actions.guard import NodeGuard
from minerguard.config import Settings
from minerguard.domain import netpol
from minerguard.errors import KubeError, NotFound
from minerguard.services.backlog import Backlog
from minerguard.services.canary import Canary
from minerguard.services.configmaps import ConfigMapCache, ConfigMapService
from minerguard.services.containment import Containment
from minerguard.services.detector import Detector, Evaluator
from minerguard.services.enforcement import EnforcementService
from minerguard.services.events import Events
from minerguard.services.falco_http import FalcoEndpoint, Token
from minerguard.services.foothold import Footholds
from minerguard.services.gate import ActivityGate
from minerguard.services.images import ImageConfigs
from minerguard.services.metrics import MetricsEngine
from minerguard.services.policies import PolicyRegistry
from minerguard.services.policyreports import PolicyReports
from minerguard.services.recorder import Recorder
from minerguard.services.release import Releaser
from minerguard.services.runtime import RuntimeEvents
from minerguard.services.state import ClusterState
from minerguard.storage.kubernetes import KubeStorage, load_api_client
from minerguard.storage.policyreports import PolicyReportStore
from minerguard.storage.registry import RegistryReader, read_credentials

log = logging.getLogger(__name__)


def pod_reader(storage: KubeStorage) -> Callable[[str, str], dict[str, Any] | None]:
    """Reads a pod for the detector (a compact cache entry evaluated again): None when gone or unreadable now."""

    def read(namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return storage.get_pod(namespace, name)
        except NotFound:
            return None
        except KubeError as exc:
            log.warning("Could not read pod %s/%s to evaluate it again: %s", namespace, name, exc)
            return None

    return read


@dataclass
class App:
    settings: Settings
    storage: KubeStorage
    state: ClusterState
    policies: PolicyRegistry
    detector: Detector
    containment: Containment
    metrics: MetricsEngine
    gate: ActivityGate
    configmaps: ConfigMapService
    enforcement: EnforcementService
    runtime: RuntimeEvents
    canary: Canary
    falco: FalcoEndpoint | None = None
    images: ImageConfigs | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, identity: str, kubeconfig: str | None = None) -> App:
        storage = KubeStorage(load_api_client(kubeconfig), instance=settings.instance)
        state = ClusterState()
        events = Events(storage)
        policies = PolicyRegistry(storage, events)
        guard = NodeGuard(storage, settings.guards, holder=settings.instance, lock_namespace=settings.namespace)
        recorder = Recorder(storage, state, events)
        releaser = Releaser(storage, settings, guard, recorder, events)
        evaluator = Evaluator(state, policies)
        footholds = Footholds(storage)
        containment = Containment(
            storage, settings, state, evaluator, recorder, releaser, guard=guard, footholds=footholds
        )
        enforcement = EnforcementService(storage, settings, events)
        chosen = enforcement.decide()
        containment.enforcement = releaser.enforcement = chosen
        recorder.enforcement = chosen.backend
        backlog = Backlog()
        detector = Detector(evaluator, state, containment.queue, read_pod=pod_reader(storage), backlog=backlog)
        backlog.evaluate, backlog.read_pod = detector.evaluate_deferred, pod_reader(storage)
        backlog.forget_pod = state.drop_pod
        metrics = MetricsEngine(
            settings.prometheus, state, policies, storage, events, detector.reevaluate_keys, containment.contain_node
        )
        runtime = RuntimeEvents(state, detector.reevaluate_keys, settings.falco)
        evaluator.metric_findings = lambda policy, wl: (*metrics.findings(policy, wl), *runtime.findings(policy, wl))
        gate = ActivityGate(storage, settings.peering, identity, settings.priority)
        guard.active = gate.active  # asked before every node action, not only when work is taken from the queue
        cache = ConfigMapCache()
        evaluator.config_maps = cache
        configmaps = ConfigMapService(cache, state, storage, detector.observe_pod)
        images = None
        if settings.registry.enabled:  # no registry is ever contacted unless the chart says so
            reader = RegistryReader(settings.registry, read_credentials(settings.registry.credentials_file))
            images = evaluator.images = ImageConfigs(settings.registry, reader, state)
            images.on_ready = detector.reevaluate_keys
        falco = None
        if settings.falco.enabled:
            f = settings.falco
            token = Token(storage, settings.namespace, f.token_secret, f.token_key)
            falco = FalcoEndpoint(f, token, runtime, gate.active)
        canary = Canary(settings.cost, settings.prometheus, state, recorder, events, metrics.client)
        return cls(
            settings,
            storage,
            state,
            policies,
            detector,
            containment,
            metrics,
            gate,
            configmaps,
            enforcement,
            runtime,
            canary,
            falco,
            images,
        )

    def start(self) -> None:
        self.containment.list_incidents()
        self.containment.start()
        if self.detector.backlog is not None:
            self.detector.backlog.start()
        if self.falco is not None:
            self.falco.start()
            falco = self.falco
            self._loop(
                "falco-label",
                2.0,
                lambda: falco.advertise(self.storage, self.settings.namespace, self.settings.instance),
                gated=False,
            )
        self._loop("resync", self.settings.resync_interval, self.resync)
        self._loop("enforcement", self.settings.resync_interval, self.enforcement.maintain)
        self._loop("policy-status", self.settings.status_interval, self.report_policy_counts)
        self._loop("metrics", self.metrics.next_interval, self.metric_cycle)
        if self.images is not None:
            images, reported = self.images, dict[str, tuple[str, str]]()
            self._loop(
                "image-status",
                self.settings.status_interval,
                lambda: images.report(self.storage, self.policies.ready(), reported),
            )
        if self.settings.policy_reports:
            reports = PolicyReports(PolicyReportStore(self.storage), self.state)
            self._loop("policy-reports", self.settings.policy_reports_interval, reports.sync)

    def stop(self) -> None:
        self.stop_event.set()
        self.containment.stop()
        if self.detector.backlog is not None:
            self.detector.backlog.stop()
        if self.images is not None:
            self.images.stop()
        for t in self.threads:
            t.join(timeout=5)

    def _loop(
        self, name: str, interval: float | Callable[[], float], fn: Callable[[], None], gated: bool = True
    ) -> None:
        """Run ``fn`` every ``interval`` seconds (a function: asked again before each wait) until stopped."""

        def wait() -> bool:
            try:
                seconds = interval() if callable(interval) else interval
            except Exception:
                log.exception("Background loop %s could not size its interval; waiting 30 s", name)
                seconds = 30.0
            return self.stop_event.wait(seconds)

        def run() -> None:
            while not wait():
                try:
                    if not gated or self.gate.active():
                        fn()
                except Exception:
                    log.exception("Background loop %s failed; it goes on", name)

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def metric_cycle(self) -> None:
        """The CPU signals, then the bill and related workloads of open incidents (the canary)."""
        self.metrics.cycle()
        self.canary.cycle()

    def resync(self) -> None:
        """Verify every containment again; list the incidents if the first listing failed."""
        if not self.state.incidents_listed:
            self.containment.list_incidents()
        self.detector.resync()

    def report_policy_counts(self) -> None:
        """Patch matchedPods/containedPods on each policy whose counts changed; report the queue's depth."""
        observability.WORK_QUEUE_DEPTH.set(self.containment.queue.pending())
        counts: dict[str, list[int]] = {p.name: [0, 0] for p in self.policies.ready()}
        for _, entry in self.state.pod_items():
            is_contained = int(entry.workload.labels.get(netpol.QUARANTINE_LABEL) == "true")
            for name in entry.matched:
                if name in counts:
                    counts[name][0] += 1
                    counts[name][1] += is_contained
        for name, (matched, contained) in counts.items():
            if self.policies.last_counts(name) == (matched, contained):
                continue
            try:
                self.storage.patch_policy_status(name, {"matchedPods": matched, "containedPods": contained})
                self.policies.set_counts(name, (matched, contained))
            except Exception as exc:  # noqa: BLE001 - reported and retried next round
                log.info("Could not update counts of MinerPolicy %s: %s", name, exc)
