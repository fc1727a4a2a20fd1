"""Falco events as Falco and falcosidekick POST them, for the unit and e2e tests of the Falco endpoint.

Shapes, from the public sources (reference only):
- falcosecurity/falco userspace/engine/formats.cpp: the JSON event of ``json_output: true``:
  ``time`` (RFC 3339 with nanoseconds and Z), ``rule``, ``priority``, ``source``, ``hostname``,
  ``output`` (with ``json_include_output_property``), ``tags`` (``json_include_tags_property``),
  ``output_fields`` (the rule's fields and the prefix's ``evt.time``, in nanoseconds);
  falco.yaml: ``http_output`` (url, ca_cert, mtls...; no custom headers) and the container
  plugin, which fills ``k8s.ns.name``, ``k8s.pod.name`` and ``container.*``.
- falcosecurity/falcosidekick types/types.go ``FalcoPayload`` (uuid, output, priority, rule,
  time, output_fields, source, tags, hostname), forwarded as is by its ``webhook`` output
  (outputs/webhook.go: POST, ``webhook.customHeaders`` set on the request).
- falcosecurity/rules rules/falco-sandbox_rules.yaml: the rule "Detect crypto miners using the
  Stratum protocol" (condition: a spawned process whose cmdline contains stratum+tcp,
  stratum2+tcp, stratum+ssl or stratum2+ssl; output "Possible miner running | evt_type=...
  command=%proc.cmdline ..."; priority CRITICAL; tags maturity_sandbox, host, container,
  process, mitre_impact, T1496).
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

STRATUM_RULE = "Detect crypto miners using the Stratum protocol"
STRATUM_TAGS = ["maturity_sandbox", "host", "container", "process", "mitre_impact", "T1496"]
CMDLINE = "kworker -o stratum+tcp://pool.example.invalid:3333 -u 4Wallet -p x"


def rfc3339(when: datetime.datetime) -> str:
    """Falco's time format: seconds, then nine digits of nanoseconds and Z."""
    when = when.astimezone(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{when.microsecond * 1000:09d}Z"


def stratum_event(
    namespace: str,
    pod: str,
    when: datetime.datetime | None = None,
    container: str = "app",
    sidekick: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """The Stratum rule firing in a pod's container, as falcosidekick forwards it (``sidekick``: with
    its uuid) or as Falco's own http_output sends it."""
    when = when or datetime.datetime.now(datetime.UTC)
    clock = when.astimezone(datetime.UTC).strftime("%H:%M:%S") + f".{when.microsecond * 1000:09d}"
    message = (
        "Possible miner running | evt_type=execve user=root user_uid=0 user_loginuid=-1 process=kworker "
        f"proc_exepath=/tmp/.x/kworker parent=sh command={CMDLINE} terminal=0 exe_flags=EXE_WRITABLE"
        f" container_id=3ad7b26ded6d container_name={container} k8s_ns_name={namespace} k8s_pod_name={pod}"
    )
    event: dict[str, Any] = {
        "hostname": "node-1",
        "output": f"{clock}: Critical {message}",
        "output_fields": {
            "container.id": "3ad7b26ded6d",
            "container.name": container,
            "evt.arg.flags": "EXE_WRITABLE",
            "evt.time": int(when.timestamp() * 1e9),
            "evt.type": "execve",
            "k8s.ns.name": namespace,
            "k8s.pod.name": pod,
            "proc.cmdline": CMDLINE,
            "proc.exepath": "/tmp/.x/kworker",
            "proc.name": "kworker",
            "proc.pname": "sh",
            "proc.tty": 0,
            "user.loginuid": -1,
            "user.name": "root",
            "user.uid": 0,
            **fields,
        },
        "priority": "Critical",
        "rule": STRATUM_RULE,
        "source": "syscall",
        "tags": STRATUM_TAGS,
        "time": rfc3339(when),
    }
    if sidekick:
        event["uuid"] = str(uuid.uuid4())
    return event


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
