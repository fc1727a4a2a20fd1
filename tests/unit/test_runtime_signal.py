"""signals.runtime: the policy field, the findings, their combination with spec and CPU findings, and the
service that takes Falco events for known pods and contains through the path of any detection."""

from __future__ import annotations

import base64
import copy
import datetime
from typing import Any

import pytest

from minerguard.config import FalcoSettings, Settings
from minerguard.domain.detection import Evidence, evaluate
from minerguard.domain.detection.runtime import MAX_RUNTIME_FINDINGS, runtime_findings
from minerguard.domain.falco import FalcoEvent, parse_event
from minerguard.domain.policy import PolicyInvalid, parse_policy
from minerguard.domain.workload import workload_from_pod
from minerguard.services.falco_http import ACTIVE_LABEL, FalcoEndpoint, Token, TokenBucket, authorized, presented
from minerguard.services.runtime import RuntimeEvents
from tests.fakes import FakeStorage
from tests.falco_events import CMDLINE, STRATUM_RULE, body, stratum_event
from tests.unit.test_containment_service import NS, Operator, build, pod_body

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2026, 12, 2, 5, 31, 2, tzinfo=datetime.UTC)
RUNTIME = {"rules": ["Detect crypto miners*"], "minimumPriority": "Warning"}


def policy(runtime: dict[str, Any] | None = None, mode: str = "Enforce", **signals: Any) -> dict[str, Any]:
    return {
        "apiVersion": "minerguard.io/v1alpha1",
        "kind": "MinerPolicy",
        "metadata": {"name": "miners", "generation": 1, "uid": "policy-uid"},
        "spec": {
            "mode": mode,
            "actions": [{"name": "quarantine"}],
            "signals": {"runtime": runtime if runtime is not None else RUNTIME, **signals},
        },
    }


def event(pod: str = "worker-6b7f", when: datetime.datetime = NOW, **change: Any) -> FalcoEvent:
    raw = stratum_event(NS, pod, when)
    raw.update(change)
    return parse_event(body(raw))


# --------------------------------------------------------------------------- the policy field


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        ({}, "spec.signals.runtime: give rules, tags or both"),
        ({"rules": []}, "spec.signals.runtime: give rules, tags or both"),
        ({"rules": [""]}, "spec.signals.runtime.rules[0]"),
        ({"tags": ["x"], "minimumPriority": "High"}, "spec.signals.runtime.minimumPriority"),
        ({"tags": ["x"], "strength": "Medium"}, "spec.signals.runtime.strength"),
        ({"tags": ["x"], "rule": "typo"}, "spec.signals.runtime"),
    ],
)
def test_invalid_runtime_signals(runtime: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyInvalid) as err:
        parse_policy(policy(runtime))
    assert message in err.value.message


def test_which_events_count() -> None:
    by_rule = parse_policy(policy({"rules": ["*crypto miner*"]})).runtime
    by_tags = parse_policy(policy({"tags": ["mitre_impact", "T1496"], "minimumPriority": "Critical"})).runtime
    assert by_rule is not None and by_tags is not None and by_rule.strength == "Strong"
    assert by_rule.counts(event()) and by_tags.counts(event())
    assert not by_rule.counts(event(rule="Terminal shell in container"))
    assert not by_tags.counts(event(tags=["mitre_impact"]))  # every listed tag is needed
    assert not by_tags.counts(event(priority="Error"))  # under the minimum
    assert by_rule.counts(event(priority="warning")) and not by_rule.counts(event(priority="Notice"))


def test_the_evidence_keeps_rule_priority_output_and_command_line() -> None:
    signals = parse_policy(policy()).runtime
    [found] = runtime_findings(signals, [event()])
    assert (found.signal, found.strength, found.container, found.value) == ("runtime", "Strong", "app", CMDLINE)
    assert found.detail.startswith(f"Falco Critical '{STRATUM_RULE}': Possible miner running | ")
    assert len(found.detail) == 200 and found.detail.endswith("k8s_pod_name=worker-6b7f")
    hostile = event(
        rule="x\x1b[31m\u202e",
        output_fields={"k8s.ns.name": NS, "k8s.pod.name": "worker-6b7f", "proc.cmdline": "a\nb" + "c" * 500},
    )
    [shown] = runtime_findings(parse_policy(policy({"rules": ["x*"]})).runtime, [hostile])
    assert shown.detail.isprintable() and "\\x1b" in shown.detail and "\\u202e" in shown.detail
    assert shown.value.startswith("a\\x0abccc") and len(shown.value) == 200


def test_findings_are_bounded_and_one_per_rule_and_command_line() -> None:
    signals = parse_policy(policy({"rules": ["*"]})).runtime
    same = [event(), event(), event()]
    assert len(runtime_findings(signals, same)) == 1
    many = [event(rule=f"rule {i}") for i in range(20)]
    assert len(runtime_findings(signals, many)) == MAX_RUNTIME_FINDINGS
    assert runtime_findings(None, many) == ()


def test_runtime_findings_combine_with_spec_findings_by_the_same_rule() -> None:
    wl = workload_from_pod(pod_body(command="/usr/bin/app", args=None) | {})
    weak = {"rules": ["Detect crypto miners*"], "strength": "Weak"}
    pool_port = {"pools": {"ports": [{"port": 3333}]}}
    found = runtime_findings(parse_policy(policy(weak)).runtime, [event()])
    alone = evaluate(parse_policy(policy(weak)), wl, {}, found)
    assert not alone.matched and "1 weak signal kind of 2 needed" in alone.reason
    wl_port = workload_from_pod(pod_body(command="/usr/bin/app --upstream=relay.example:3333"))
    both = evaluate(parse_policy(policy(weak, **pool_port)), wl_port, {}, found)
    assert both.matched and {e.signal for e in both.evidence} == {"poolPort", "runtime"}
    strong = evaluate(parse_policy(policy()), wl, {}, runtime_findings(parse_policy(policy()).runtime, [event()]))
    assert strong.matched and strong.actions == ("quarantine",)
    without = parse_policy({**policy(), "spec": {**policy()["spec"], "signals": {"processes": [{"glob": "x"}]}}})
    assert not evaluate(without, wl, {}, found).matched  # a policy without signals.runtime ignores them
    cpu = Evidence(signal="podCpu", strength="Weak", container="", detail="CPU at 99%", value="0.99")
    required = policy(weak, cpu={"pod": {"threshold": 0.9}})
    required["spec"]["match"] = {"requireSignals": ["runtime", "podCpu"]}
    assert evaluate(parse_policy(required), wl, {}, (*found, cpu)).matched
    assert not evaluate(parse_policy(required), wl, {}, found).matched


# --------------------------------------------------------------------------- the service


def operator(mode: str = "Enforce") -> tuple[Operator, RuntimeEvents, list[set[tuple[str, str]]]]:
    op = build(policy=policy(mode=mode))
    asked: list[set[tuple[str, str]]] = []

    def reevaluate(keys: set[tuple[str, str]]) -> None:
        asked.append(keys)
        op.detector.reevaluate_keys(keys)

    runtime = RuntimeEvents(op.state, reevaluate, FalcoSettings(max_age=300, retention=3600), clock=NOW.timestamp)
    op.detector.evaluator.metric_findings = runtime.findings
    return op, runtime, asked


def test_an_innocent_pod_is_quarantined_after_a_stratum_event_for_it() -> None:
    op, runtime, _ = operator()
    op.storage.put("Pod", pod_body("worker-6b7f", command="/usr/bin/app"))
    op.settle()
    assert op.storage.total_calls() == 0  # not matched: zero writes, zero reads
    assert runtime.take(event()) == "accepted"
    op.settle()
    pod = op.storage.objects[("Pod", NS, "worker-6b7f")]
    assert pod["metadata"]["labels"].get("minerguard.io/quarantined") == "true"
    incident = op.incident("pod-worker-6b7f")
    assert incident["status"]["state"] == "Contained"
    [evidence] = incident["status"]["evidence"]
    assert evidence["signal"] == "runtime" and evidence["value"] == CMDLINE and STRATUM_RULE in evidence["detail"]
    assert "MinerDetected" in op.storage.reasons()


def test_in_audit_mode_the_event_is_only_recorded() -> None:
    op, runtime, _ = operator(mode="Audit")
    op.storage.put("Pod", pod_body("worker-6b7f", command="/usr/bin/app"))
    op.settle()
    assert runtime.take(event()) == "accepted"
    op.settle()
    assert op.incident("pod-worker-6b7f")["status"]["state"] == "Detected"
    assert "minerguard.io/quarantined" not in op.storage.objects[("Pod", NS, "worker-6b7f")]["metadata"]["labels"]
    assert not [k for k in op.storage.objects if k[0] == "NetworkPolicy"]


def test_events_that_are_ignored_create_nothing() -> None:
    op, runtime, asked = operator()
    op.storage.put("Pod", pod_body("worker-6b7f", command="/usr/bin/app"))
    op.settle()
    old = NOW - datetime.timedelta(seconds=301)
    ahead = NOW + datetime.timedelta(seconds=61)
    host = event()
    host = FalcoEvent(rule=host.rule, priority=host.priority, time=host.time)
    assert runtime.take(event(when=old)) == "stale"
    assert runtime.take(event(when=ahead)) == "future"
    assert runtime.take(host) == "no pod"
    assert runtime.take(event(pod="not-a-pod-we-know")) == "unknown pod"
    other_uid = parse_event(body(stratum_event(NS, "worker-6b7f", NOW, **{"k8s.pod.uid": "someone-else"})))
    assert runtime.take(other_uid) == "unknown pod"
    op.settle()
    assert asked == [] and op.storage.total_calls() == 0
    first = event()
    assert runtime.take(first) == "accepted"
    assert runtime.take(copy.copy(first)) == "replayed"
    assert asked == [{(NS, "worker-6b7f")}]


def test_events_count_for_the_pod_they_were_taken_for_and_for_the_retention() -> None:
    op, runtime, _ = operator()
    op.storage.put("Pod", pod_body("worker-6b7f", command="/usr/bin/app"))
    op.settle()
    runtime.take(event())
    pol = parse_policy(policy())
    same = workload_from_pod(op.storage.objects[("Pod", NS, "worker-6b7f")])
    assert len(runtime.findings(pol, same)) == 1
    recreated = workload_from_pod(
        {**pod_body("worker-6b7f"), "metadata": {"name": "worker-6b7f", "namespace": NS, "uid": "new"}}
    )
    assert runtime.findings(pol, recreated) == ()
    runtime.clock = lambda: NOW.timestamp() + 3601
    assert runtime.findings(pol, same) == ()


# --------------------------------------------------------------------------- the endpoint's checks


def test_bearer_and_basic_credentials() -> None:
    basic = base64.b64encode(b"falco:s3cret").decode()
    assert presented("Bearer s3cret") == presented(f"Basic {basic}") == "s3cret"
    assert authorized("Bearer s3cret", "s3cret") and authorized(f"basic {basic}", "s3cret")
    for header in (
        "",
        "Bearer",
        "Bearer wrong",
        "Token s3cret",
        "Basic !!!",
        f"Basic {base64.b64encode(b'x').decode()}",
    ):
        assert not authorized(header, "s3cret"), header
    assert not authorized("Bearer ", "") and not authorized("Bearer x", "")  # no token read: nobody gets in


def test_the_token_is_read_from_its_secret_through_storage() -> None:
    storage = FakeStorage()
    storage.put(
        "Secret",
        {"metadata": {"name": "falco-token", "namespace": "minerguard-system"}, "stringData": {"token": "s3cret\n"}},
    )
    token = Token(storage, "minerguard-system", "falco-token", "token")  # type: ignore[arg-type]
    assert token.current() == token.current() == "s3cret"
    assert storage.calls[("get", "Secret")] == 1  # cached
    missing = Token(storage, "minerguard-system", "absent", "token")  # type: ignore[arg-type]
    assert missing.current() == ""


def test_the_rate_is_bounded() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert bucket.take() and not bucket.take()


def test_the_endpoint_is_off_by_default_and_never_without_tls_and_token() -> None:
    assert not Settings.from_env({}).falco.enabled
    with pytest.raises(ValueError, match="TLS"):
        Settings.from_env({"MINERGUARD_FALCO_ENABLED": "true"})
    on = Settings.from_env(
        {
            "MINERGUARD_FALCO_ENABLED": "true",
            "MINERGUARD_FALCO_TLS_CERT": "c",
            "MINERGUARD_FALCO_TLS_KEY": "k",
            "MINERGUARD_FALCO_TOKEN_SECRET": "t",
            "MINERGUARD_FALCO_MAX_AGE": "60",
        }
    )
    assert on.falco.enabled and on.falco.max_age == 60 and on.falco.max_body == 65536


def test_the_active_replica_labels_its_own_pod_for_the_service() -> None:
    storage = FakeStorage()
    storage.put("Pod", {"metadata": {"name": "minerguard-7d9f", "namespace": "minerguard-system", "labels": {}}})
    active = [True]
    runtime = RuntimeEvents(build().state, lambda keys: None)
    token = Token(storage, "minerguard-system", "t", "token")  # type: ignore[arg-type]
    endpoint = FalcoEndpoint(FalcoSettings(), token, runtime, lambda: active[0])

    def label() -> str:
        return str(
            storage.objects[("Pod", "minerguard-system", "minerguard-7d9f")]["metadata"]["labels"].get(ACTIVE_LABEL)
        )

    endpoint.advertise(storage, "minerguard-system", "minerguard-7d9f")  # type: ignore[arg-type]
    endpoint.advertise(storage, "minerguard-system", "minerguard-7d9f")  # type: ignore[arg-type]
    assert label() == "active" and storage.calls[("patch", "Pod")] == 1  # written once, when it changes
    active[0] = False
    endpoint.advertise(storage, "minerguard-system", "minerguard-7d9f")  # type: ignore[arg-type]
    assert label() == "standby"
    active[0] = True
    endpoint.advertise(storage, "minerguard-system", "absent")  # type: ignore[arg-type]  # logged, not raised
    endpoint.advertise(storage, "minerguard-system", "absent")  # type: ignore[arg-type]
    assert storage.calls[("patch", "Pod")] == 3 and endpoint.acting  # a missing pod is not asked for again


def test_the_readme_example_policy_is_valid() -> None:
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Falco runtime events", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```yaml\n")[1:]]
    [example] = [yaml.safe_load(b) for b in blocks if "kind: MinerPolicy" in b]
    parsed = parse_policy(example)
    assert parsed.runtime is not None and parsed.runtime.tags == {"mitre_impact", "T1496"}
    assert parsed.runtime.counts(event())


def test_the_handler_refuses_before_reading_when_over_the_rate_passive_or_unauthenticated() -> None:
    from aiohttp.test_utils import make_mocked_request

    storage = FakeStorage()
    storage.put("Secret", {"metadata": {"name": "tok", "namespace": "ns"}, "stringData": {"token": "s3cret"}})
    active = [False]
    taken: list[FalcoEvent] = []
    runtime = RuntimeEvents(build().state, lambda keys: None)
    runtime.take = lambda e: taken.append(e) or "accepted"  # type: ignore[method-assign]
    endpoint = FalcoEndpoint(
        FalcoSettings(rate=1.0, burst=3), Token(storage, "ns", "tok", "token"), runtime, lambda: active[0]
    )  # type: ignore[arg-type]

    def status(headers: dict[str, str]) -> tuple[int, str]:
        request = make_mocked_request("POST", "/falco", headers=headers)
        response = endpoint.loop.run_until_complete(endpoint.handle(request))
        return response.status, str(response.text).strip()

    assert status({"Authorization": "Bearer s3cret"})[0] == 503  # a passive replica (not asked yet: passive)
    endpoint.acting = True
    assert status({}) == (401, "a Bearer token (or Basic password) is required")
    assert status({"Authorization": "Bearer s3cret", "Content-Length": "70000"})[0] == 413
    assert status({"Authorization": "Bearer s3cret"})[0] == 429  # the burst of 3 is spent
    assert taken == [] and storage.calls[("get", "Secret")] == 1
    endpoint.loop.close()
