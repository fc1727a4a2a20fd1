"""Related workloads: the other workloads that share an indicator with an incident.

The same access that let one miner in is usually used again: a second namespace with the same wallet,
the same pool, the same image, the same ServiceAccount or the same creator. An incident's
``status.related`` lists them (at most :data:`MAX_RELATED`, with the full count), found in the
operator's in-memory pod views only (no API read per pod):

* wallets (the miner's own login values, and any Monero address in its text) and pool hosts from the
  incident's evidence: a workload whose container text contains one shares it;
* image repository and digest, but only those a policy matched (``image``/``imageDigest`` evidence): a
  base image such as ``alpine`` shared by half the cluster says nothing;
* the ServiceAccount, except a namespace's ``default`` one (every pod that names none has it);
* the creator, from the creator stamp (``minerguard.io/created-by`` on bare pods, and the creators of
  other open incidents).

Pure: the service gives the candidates (:mod:`minerguard.services.canary`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minerguard.domain.detection.tokens import short_wallet
from minerguard.domain.foothold import digest, repository
from minerguard.domain.text import ELLIPSIS
from minerguard.domain.workload import Workload

MAX_RELATED = 20
MONERO = re.compile(r"(?<![0-9A-Za-z])[48][0-9AB][1-9A-HJ-NP-Za-km-z]{93}(?:[1-9A-HJ-NP-Za-km-z]{11})?(?![0-9A-Za-z])")
_TOKENS = re.compile(r"[^\s\"'=,;@/]+")


@dataclass(frozen=True)
class Indicators:
    """What an incident's workload is recognised by."""

    wallets: frozenset[str] = frozenset()
    pool_hosts: frozenset[str] = frozenset()
    repositories: frozenset[str] = frozenset()
    digests: frozenset[str] = frozenset()
    service_account: str = ""
    """``namespace/name``; empty for a namespace's default ServiceAccount."""
    creators: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(
            self.wallets
            or self.pool_hosts
            or self.repositories
            or self.digests
            or self.service_account
            or self.creators
        )


def texts(wl: Workload) -> Iterator[str]:
    """Every text detection reads of the workload: images, command, args, env and ConfigMap values."""
    for c in wl.containers:
        yield c.image
        yield from c.command
        yield from c.args
        yield from (value for _, value in c.env)
        yield from (value for _, value in c.config_env)
        yield from (text for _, text in c.files)


def _host(value: str) -> str:
    """The host of a pool URL or ``host:port`` token."""
    rest = value.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].split(":", 1)[0].strip().lower()


def wallets_in(wl: Workload, shortened: Iterable[str]) -> set[str]:
    """Full wallets in the workload's text: Monero addresses, and the tokens the evidence quoted shortened."""
    cuts = [s.split(ELLIPSIS, 1) for s in shortened if ELLIPSIS in s]
    whole = {s for s in shortened if s and ELLIPSIS not in s}
    found: set[str] = set()
    for text in texts(wl):
        found.update(MONERO.findall(text))
        for token in _TOKENS.findall(text) if cuts or whole else ():
            if token in whole or any(token.startswith(h) and token.endswith(t) for h, t in cuts):
                found.add(token)
    return {w for w in found if len(w) >= 8}


def indicators(
    wl: Workload, evidence: Sequence[Mapping[str, Any]], service_account: str, creators: Iterable[str]
) -> Indicators:
    """The incident's indicators from its pod view, its evidence records, its ServiceAccount and creators."""
    by: dict[str, list[str]] = {}
    for e in evidence:
        by.setdefault(str(e.get("signal")), []).append(str(e.get("value") or ""))
    hosts = {_host(v) for v in by.get("poolHost", []) + by.get("poolEndpoint", []) if v}
    images = {c.image for c in wl.containers if c.image and c.image in set(by.get("image", []))}
    digests = {v for v in by.get("imageDigest", []) if v.startswith("sha256:")}
    digests |= {digest(c.image_id) for c in wl.containers if c.image in images and digest(c.image_id)}
    account = "" if service_account in ("", "default") else f"{wl.namespace}/{service_account}"
    return Indicators(
        wallets=frozenset(wallets_in(wl, by.get("wallet", []))),
        pool_hosts=frozenset(h for h in hosts if h),
        repositories=frozenset(repository(i) for i in images),
        digests=frozenset(digests),
        service_account=account,
        creators=frozenset(c for c in creators if c),
    )


def shares(ind: Indicators, wl: Workload) -> list[str]:
    """What the workload shares with the incident, as short words (``wallet 4AAAAAAA…AAAAAA``)."""
    out: list[str] = []
    if ind.wallets or ind.pool_hosts:
        blob = "\n".join(texts(wl))
        out += [f"wallet {short_wallet(w)}" for w in sorted(ind.wallets) if w in blob]
        lowered = blob.lower()
        out += [f"pool host {h}" for h in sorted(ind.pool_hosts) if h in lowered]
    for c in wl.containers:
        if c.image and repository(c.image) in ind.repositories and f"image {repository(c.image)}" not in out:
            out.append(f"image {repository(c.image)}")
        d = digest(c.image_id) or digest(c.image)
        if d and d in ind.digests and f"digest {d}" not in out:
            out.append(f"digest {d}")
    if ind.service_account and ind.service_account == f"{wl.namespace}/{wl.service_account}":
        out.append(f"ServiceAccount {ind.service_account}")
    if wl.created_by and wl.created_by in ind.creators:
        out.append(f"creator {wl.created_by}")
    return out


def workload_of(wl: Workload) -> tuple[str, str]:
    """(kind, name) of the workload a pod belongs to, from its view only: a ReplicaSet named
    ``<deployment>-<pod-template-hash>`` is its Deployment's; otherwise the controller, or the pod."""
    owner = wl.owner
    if owner is None:
        return "Pod", wl.name
    template_hash = wl.labels.get("pod-template-hash", "")
    if owner.kind == "ReplicaSet" and template_hash and owner.name.endswith(f"-{template_hash}"):
        return "Deployment", owner.name[: -len(template_hash) - 1]
    return owner.kind, owner.name


def find(
    ind: Indicators,
    own: tuple[str, str, str],
    candidates: Iterable[Workload],
    extra: Iterable[tuple[tuple[str, str, str], list[str]]] = (),
    cap: int = MAX_RELATED,
) -> tuple[list[dict[str, Any]], int]:
    """The workloads (other than ``own``: namespace, kind, name) sharing an indicator, at most ``cap`` of them
    (sorted), and how many there are. ``extra`` adds workloads found otherwise (other incidents' creators)."""
    found: dict[tuple[str, str, str], list[str]] = {}
    if ind:
        for wl in candidates:
            key = (wl.namespace, *workload_of(wl))
            if key == own:
                continue
            words = shares(ind, wl)
            if words:
                known = found.setdefault(key, [])
                known += [w for w in words if w not in known]
    for key, words in extra:
        if key != own and words:
            known = found.setdefault(key, [])
            known += [w for w in words if w not in known]
    items = [
        {"namespace": ns, "kind": kind, "name": name, "shares": words[:10]}
        for (ns, kind, name), words in sorted(found.items())
    ]
    return items[:cap], len(items)


def names(related: Sequence[Mapping[str, Any]]) -> list[str]:
    """``Kind ns/name`` of each related workload, for Events and summaries."""
    return [f"{r.get('kind')} {r.get('namespace')}/{r.get('name')}" for r in related]
