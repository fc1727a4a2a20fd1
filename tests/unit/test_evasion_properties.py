"""Property tests: a miner indicator survives any combination of wrappers, shells, encodings,
indirections and padding, within the engine's bounds; and the same disguises around an
ordinary program find nothing."""

from __future__ import annotations

import base64
import json
import shlex
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerguard.domain.detection import evaluate, spec_findings
from minerguard.domain.detection.shell import MAX_DEPTH
from minerguard.domain.policy import Policy, parse_policy
from minerguard.domain.workload import ConfigMapIndex, workload_from_pod

pytestmark = pytest.mark.unit

POLICY: Policy = parse_policy(
    {
        "metadata": {"name": "p"},
        "spec": {
            "mode": "Enforce",
            "actions": [{"name": "quarantine"}],
            "signals": {
                "configMaps": True,
                "processes": [{"glob": "xmrig*"}],
                "arguments": [{"glob": "--donate-level*"}],
                "pools": {"schemes": ["stratum+tcp"], "hosts": [{"regex": r"(^|\.)supportxmr\.com$"}]},
            },
        },
    }
)

WRAPPERS = [
    "nohup",
    "nice -n 19",
    "timeout 0",
    "env A=B",
    "env -i PATH=/bin",
    "setsid",
    "exec",
    "exec -a kworker",
    "sudo -E -u root --",
    "chroot /host",
    "taskset -c 0-3",
    "ionice -c 3",
    "stdbuf -oL",
    "busybox",
    "xargs -n 1",
    "time",
    "command",
]


def wrap(script: str, how: str, wrapper: str) -> str:
    """One layer of disguise around a shell script."""
    if how == "wrapper":
        return f"{wrapper} {script}" if not script.startswith(("echo ", "eval ", "sh ", ": ")) else script
    if how == "sh-c":
        return f"sh -c {shlex.quote(script)}"
    if how == "bash-lc":
        return f"bash -lc {shlex.quote(script)}"
    if how == "base64":
        return f"echo {base64.b64encode(script.encode()).decode()} | base64 -d | sh"
    if how == "eval-b64":
        return f'eval "$(echo {base64.b64encode(script.encode()).decode()} | base64 --decode)"'
    if how == "printf":
        return "sh -c \"$(printf '" + "".join(f"\\x{b:02x}" for b in script.encode()) + "')\""
    if how == "xxd":
        return f"echo {script.encode().hex()} | xxd -r -p | bash"
    if how == "eval":
        return f"eval {shlex.quote(script)}"
    if how == "chain":
        return f"cd /tmp && true; {script} || exit 1"
    if how == "subshell":
        return f"( {script} ) &"
    if how == "heredoc":
        return f"sh <<'EOF'\n{script}\nEOF"
    raise AssertionError(how)


LAYERS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "wrapper",
                "sh-c",
                "bash-lc",
                "base64",
                "eval-b64",
                "printf",
                "xxd",
                "eval",
                "chain",
                "subshell",
                "heredoc",
            ]
        ),
        st.sampled_from(WRAPPERS),
    ),
    max_size=MAX_DEPTH - 2,
)


def pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "x", "namespace": "apps"},
        "spec": {"containers": [{"name": "c", "image": "a", **container}]},
    }


def kinds(body: dict[str, Any], config_maps: ConfigMapIndex | None = None) -> set[str]:
    return {e.signal for e in spec_findings(POLICY, workload_from_pod(body, config_maps)) if e.strength == "Strong"}


@settings(max_examples=150, deadline=None)
@given(layers=LAYERS, program=st.sampled_from(["xmrig", "/tmp/.x/xmrig", "XMRig", "xmrig-notls"]))
def test_program_survives_any_disguise(layers: list[tuple[str, str]], program: str) -> None:
    script = f"{program} -a rx/0"
    for how, wrapper in layers:
        script = wrap(script, how, wrapper)
    assert "process" in kinds(pod({"command": ["sh", "-c", script]}))


@settings(max_examples=100, deadline=None)
@given(layers=LAYERS)
def test_ordinary_program_stays_clean_in_any_disguise(layers: list[tuple[str, str]]) -> None:
    script = "python3 -m http.server 3333 --bind 0.0.0.0"
    for how, wrapper in layers:
        script = wrap(script, how, wrapper)
    assert kinds(pod({"command": ["sh", "-c", script]})) == set()


SPELLINGS = [
    "-o stratum+tcp://pool.supportxmr.com:3333",
    "-ostratum+tcp://pool.supportxmr.com:3333",
    "--url=stratum+tcp://pool.supportxmr.com:3333",
    "--url stratum+tcp://pool.supportxmr.com:3333",
    "-o STRATUM+TCP://POOL.SUPPORTXMR.COM:3333",
    "--url=stratum%2Btcp%3A%2F%2Fpool.supportxmr.com%3A3333",
]


@settings(max_examples=100, deadline=None)
@given(spelling=st.sampled_from(SPELLINGS), where=st.sampled_from(["args", "env", "var", "configmap", "config-json"]))
def test_pool_url_survives_any_spelling_and_place(spelling: str, where: str) -> None:
    option, _, value = spelling.partition(" ") if " " in spelling else (spelling, "", "")
    config_maps = None
    if where == "args":
        container: dict[str, Any] = {"command": ["/app/svc", *spelling.split(" ")]}
    elif where == "env":
        container = {"command": ["/app/svc"], "env": [{"name": "OPTS", "value": spelling}]}
    elif where == "var":
        container = {"command": ["/app/svc", "$(OPTS)"], "env": [{"name": "OPTS", "value": spelling}]}
    elif where == "configmap":
        config_maps = ConfigMapIndex.from_objects(
            [{"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "apps"}, "data": {"OPTS": spelling}}]
        )
        container = {"command": ["sh", "-c", "exec /app/svc $OPTS"], "envFrom": [{"configMapRef": {"name": "cm"}}]}
    else:
        url = (value or spelling.split("=", 1)[-1]).removeprefix("-o")
        container = {"env": [{"name": "CFG", "value": json.dumps({"pools": [{"url": url}]})}]}
    del option
    assert {"poolEndpoint", "poolHost"} <= kinds(pod(container), config_maps)


@settings(max_examples=60, deadline=None)
@given(pad=st.integers(min_value=70_000, max_value=900_000), filler=st.sampled_from(["A", " ", "#", "x y ", "é"]))
def test_indicator_after_padding_is_found_and_padding_is_weak(pad: int, filler: str) -> None:
    padding = (filler * (pad // len(filler) + 1))[:pad]
    body = pod({"command": ["sh", "-c", f": '{padding}'; xmrig --donate-level 1"]})
    verdict = evaluate(POLICY, workload_from_pod(body), None)
    signals = {(e.signal, e.strength) for e in verdict.evidence}
    assert ("process", "Strong") in signals and ("oversizedValue", "Weak") in signals
