"""The chart's image inspection values and the operator's NetworkPolicy (issue #13): off by default, on, or listed."""

from __future__ import annotations

import pytest

from tests.e2e.test_chart import CHART, env_of, helm, of_kind, one, render, sets

pytestmark = pytest.mark.e2e

REGISTRY_ENV = "MINERGUARD_IMAGES_ENABLED"


def egress_ports(policy: dict[str, object]) -> list[list[int]]:
    rules = policy["spec"]["egress"]  # type: ignore[index]
    return [[p["port"] for p in rule.get("ports", [])] for rule in rules]


def test_off_by_default_no_registry_setting_no_egress() -> None:
    docs = render()
    env = env_of(docs)
    assert REGISTRY_ENV not in env and not any(k.startswith("MINERGUARD_IMAGES_") for k in env)
    assert not of_kind(docs, "NetworkPolicy")
    guarded = render(*sets("networkPolicy.enabled=true"))
    policy = one(guarded, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert egress_ports(policy) == [[53, 53], [443, 6443]]  # DNS and the API server only


def test_any_registry_on_public_addresses() -> None:
    docs = render(*sets("imageInspection.mode=Any", "networkPolicy.enabled=true"))
    env = env_of(docs)
    assert env[REGISTRY_ENV] == "true" and env["MINERGUARD_IMAGES_REGISTRIES"] == ""
    registry_rule = one(docs, "NetworkPolicy")["spec"]["egress"][-1]
    block = registry_rule["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in block["except"]
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")


def test_listed_registries_with_one_credentials_secret_mounted() -> None:
    docs = render(
        *sets(
            "imageInspection.mode=Listed",
            "imageInspection.registries={ghcr.io,registry.example.com:5000}",
            "imageInspection.credentialsSecret=pull-creds",
            "networkPolicy.enabled=true",
            "networkPolicy.registryCIDRs={140.82.112.0/20}",
        )
    )
    env = env_of(docs)
    assert env["MINERGUARD_IMAGES_REGISTRIES"] == "ghcr.io,registry.example.com:5000"
    assert env["MINERGUARD_IMAGES_CREDENTIALS_FILE"] == "/var/run/secrets/minerguard/registry/.dockerconfigjson"
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["registry-credentials"]["secret"]["secretName"] == "pull-creds"
    # A mounted file: no Role on Secrets, and the ClusterRole has none either.
    assert not of_kind(docs, "Role")
    for role in of_kind(docs, "ClusterRole"):
        assert all("secrets" not in rule.get("resources", []) for rule in role["rules"])
    registry_rule = one(docs, "NetworkPolicy")["spec"]["egress"][-1]
    assert registry_rule["to"] == [{"ipBlock": {"cidr": "140.82.112.0/20"}}]


def test_listed_needs_registries() -> None:
    result = helm("template", "x", str(CHART), *sets("imageInspection.mode=Listed"), check=False)
    assert result.returncode != 0 and "registries" in result.stderr
