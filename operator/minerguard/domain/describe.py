"""A responder's one-screen summary of a MinerIncident, in the style of ``kubectl describe``.

What matched, what was done, the foothold (who made it, through what, what its ServiceAccount can do,
what it can do to its node, where it ran), related workloads, the bill, and the next steps. Pure text
from the incident object (and its Events, when given); ``minerguard incident describe`` reads them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from minerguard.domain import foothold as fh
from minerguard.domain.eventlines import about_incident, event_lines
from minerguard.domain.text import printable, shorten

WIDTH = 18
_EVIDENCE = ("signal", "strength", "container", "detail")
_ACTIONS = ("time", "action", "target", "result")


def _m(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _s(value: object, limit: int = 160) -> str:
    return shorten(printable(str(value)), limit) if value not in (None, "") else "-"


def field(name: str, value: object, indent: int = 0) -> str:
    label = f"{' ' * indent}{name}:"
    return f"{label:<{WIDTH + indent}} {_s(value)}"


def table(rows: Sequence[Sequence[str]], indent: int = 2) -> list[str]:
    if not rows:
        return [f"{' ' * indent}<none>"]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [" " * indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _chain(foothold: Mapping[str, Any]) -> list[str]:
    out = []
    for link in _l(foothold.get("ownerChain")):
        link = _m(link)
        managers = ", ".join(str(m) for m in _l(link.get("managers"))) or "-"
        out.append(f"    {link.get('kind')} {link.get('name')}  created {_s(link.get('created'))}  by {managers}")
    return out


def _foothold(foothold: Mapping[str, Any]) -> list[str]:
    if not foothold:
        return ["Foothold:          <not gathered yet>"]
    creator = _m(foothold.get("creator"))
    who = creator.get("username") or "unknown (creator stamp off: see the field managers below)"
    groups = ", ".join(str(g) for g in _l(creator.get("groups")))
    lines = ["Foothold:", field("Created By", f"{who}{f' (groups: {groups})' if groups else ''}", 2)]
    lines += ["  Owner Chain:", *_chain(foothold)]
    account = _m(foothold.get("serviceAccount"))
    lines.append(field("Service Account", f"{account.get('namespace')}/{account.get('name')}", 2))
    rows = [
        [str(_m(r).get("can")), str(_m(r).get("scope")), str(_m(r).get("allowed"))] for r in _l(account.get("reach"))
    ]
    lines += ["  Can (SubjectAccessReviews):", *table([["WHAT", "SCOPE", "ALLOWED"], *rows], 4)]
    host = _m(foothold.get("host"))
    exposure = ", ".join(fh.exposure(foothold)) or "none"
    token = "yes" if host.get("automountServiceAccountToken") else "no"
    lines.append(field("Host Exposure", f"{exposure}; ServiceAccount token mounted: {token}", 2))
    where = _m(foothold.get("where"))
    lines.append(field("Node", where.get("node"), 2))
    for image in _l(where.get("images")):
        image = _m(image)
        lines.append(
            field(
                "Image",
                f"{image.get('image')} (container {image.get('container')}, registry {image.get('registry', '-')}, "
                f"digest {image.get('digest', 'not resolved')})",
                2,
            )
        )
    lines.append(field("Pod Created", where.get("created"), 2))
    lines.append(field("Detected", where.get("detected"), 2))
    return lines


def _related(status: Mapping[str, Any]) -> list[str]:
    items = _l(status.get("related"))
    count = int(status.get("relatedCount") or len(items))
    rows = [
        [f"{_m(r).get('kind')} {_m(r).get('namespace')}/{_m(r).get('name')}", ", ".join(_l(_m(r).get("shares")))]
        for r in items
    ]
    more = [f"  ... and {count - len(items)} more"] if count > len(items) else []
    return [f"Related Workloads ({count}):", *table(rows), *more]


def _cost(status: Mapping[str, Any]) -> list[str]:
    bill = _m(status.get("cost"))
    if not bill:
        return ["Cost:              <not metered (no Prometheus, or no sample yet)>"]
    return [
        "Cost:",
        field("CPU", f"{bill.get('cpuCoreSeconds')} core-seconds while open ({bill.get('currentCores')} cores now)", 2),
        field(
            "Estimate", f"{bill.get('estimate')} at {bill.get('pricePerCoreHour')} {bill.get('currency')}/core-hour", 2
        ),
        field("Since", bill.get("since"), 2),
    ]


def next_steps(incident: Mapping[str, Any]) -> list[str]:
    """What a responder does next, from what the incident says."""
    meta, status = _m(incident.get("metadata")), _m(incident.get("status"))
    foothold = _m(status.get("foothold"))
    account = _m(foothold.get("serviceAccount"))
    ns, name = meta.get("namespace"), meta.get("name")
    steps = []
    if account:
        can = fh.dangerous(foothold)
        worst = f" - it can {', '.join(can)}" if can else ""
        steps.append(
            f"Rotate the token of ServiceAccount {account.get('namespace')}/{account.get('name')}{worst}: delete its "
            f"token Secrets and review its bindings (kubectl get rolebindings,clusterrolebindings -A -o wide)"
        )
    creator = _m(foothold.get("creator")).get("username")
    chain = _l(foothold.get("ownerChain"))
    managers = ", ".join(str(m) for m in _l(_m(chain[-1]).get("managers"))) if chain else ""
    if creator:
        steps.append(f"Check the credentials of {creator}: who holds them, where they were used, revoke them")
    elif managers:
        steps.append(f"Find who used the client(s) {managers} (audit log), and check those credentials")
    if status.get("relatedCount"):
        steps.append(f"Review the {status.get('relatedCount')} related workload(s) listed above: the same access")
    if status.get("state") != "Released":
        steps.append(
            f"When cleaned up, release: kubectl patch minerincident {name} -n {ns} --type merge "
            '-p \'{"spec":{"release":true}}\''
        )
    return [f"  {i}. {s}" for i, s in enumerate(steps, 1)] or ["  <none>"]


def describe(
    incident: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]] | None = None,
    now: datetime.datetime | None = None,
    unread: str = "",
) -> str:
    """The one-screen text of an incident and, when ``events`` are given (None: not read, ``unread`` says why),
    the Events minerguard emitted about it, its pods and its nodes, newest last, aged from ``now``."""
    meta, spec, status = _m(incident.get("metadata")), _m(incident.get("spec")), _m(incident.get("status"))
    workload = _m(spec.get("workload"))
    matched = [[_s(_m(e).get(k), 90) for k in _EVIDENCE] for e in _l(status.get("evidence"))][:10]
    actions = [[_s(_m(a).get(k), 60) for k in _ACTIONS] for a in _l(status.get("actions"))][-8:]
    lines = [
        field("Name", meta.get("name")),
        field("Namespace", meta.get("namespace")),
        field("Workload", f"{workload.get('kind')} {meta.get('namespace')}/{workload.get('name')}"),
        field("Policy", f"{spec.get('policy')} ({spec.get('mode')})"),
        field("State", status.get("state")),
        field("Message", status.get("message")),
        field("First Seen", status.get("firstSeen")),
        "Matched:",
        *table([[k.upper() for k in _EVIDENCE], *matched]),
        "Actions:",
        *table([[k.upper() for k in _ACTIONS], *actions]),
        *_foothold(_m(status.get("foothold"))),
        *_related(status),
        *_cost(status),
        "Next Steps:",
        *next_steps(incident),
    ]
    if events is not None:
        lines += event_lines(about_incident(incident, events), now or datetime.datetime.now(datetime.UTC))
    elif unread:
        lines.append(field("Events", f"<not read: {unread}>"))
    return "\n".join(lines) + "\n"
