"""What the OCI distribution API says, read purely: references, auth challenges, manifests, image configs.

The registry reader (:mod:`minerguard.storage.registry`) does the HTTP; everything it gets back is
parsed here, never trusting the answer: a body that is not JSON, a field of the wrong type, a
missing digest or a digest that is not ``sha256:`` + 64 hex digits is :class:`OciError`, never a
crash. What is kept of an image config is bounded (see :data:`MAX_HISTORY` and :func:`parse_config`)
and is only what detection reads: ``Entrypoint``, ``Cmd``, ``Env``, ``WorkingDir``, ``Labels``
and each history entry's ``created_by``. Layers are never described here, since they are never read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minerguard.domain.patterns import MAX_VALUE_LEN

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

DOCKER_HUB = "registry-1.docker.io"
MAX_HISTORY = 256
"""History entries kept of an image config: the oldest and the newest half of it (a longer history is
noted in :attr:`ImageConfig.history_length`, and reported by detection as a Weak ``oversizedValue``)."""
MAX_ENV = 5000
MAX_LABELS = 4096
MAX_INDEX_ENTRIES = 1000

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REPO = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?")


class OciError(ValueError):
    """A reference, challenge or registry answer that cannot be used."""


def is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


@dataclass(frozen=True)
class Reference:
    """An image reference: registry host (with port), repository, tag and digest (either may be empty)."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def ref(self) -> str:
        """What the manifest is asked for: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        tail = (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")
        return f"{self.registry}/{self.repository}{tail}"


def parse_reference(image: str) -> Reference:
    """``[host[:port]/]repo[:tag][@sha256:...]`` as Kubernetes and containerd read it (Docker Hub when
    the first part is not a host: no dot, no port, not ``localhost``; ``library/`` for one-part names)."""
    if not image or len(image) > 4096 or image != image.strip():
        raise OciError("empty or malformed image reference")
    rest, _, digest = image.partition("@")
    if digest and not is_digest(digest):
        raise OciError(f"not a sha256 digest: {digest[:80]}")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = DOCKER_HUB, rest
    if registry in ("docker.io", "index.docker.io"):
        registry = DOCKER_HUB
    path, colon, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _HOST.fullmatch(registry) or not _REPO.fullmatch(path) or (colon and not _TAG.fullmatch(tag)):
        raise OciError(f"malformed image reference: {image[:200]}")
    return Reference(registry, path, tag if colon else ("" if digest else "latest"), digest)


def digest_of_image_id(image_id: str) -> str:
    """The digest of a container status ``imageID`` (``docker-pullable://repo@sha256:...``, ``repo@sha256:...``
    or ``sha256:...``), or ''."""
    tail = image_id.rsplit("@", 1)[-1]
    tail = tail.rsplit("://", 1)[-1]
    return tail if is_digest(tail) else ""


# ---------------------------------------------------------------------------------------------
# Auth challenges

MAX_CHALLENGE = 8192
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')


@dataclass(frozen=True)
class Challenge:
    """A ``WWW-Authenticate`` challenge: its scheme (lowercased) and parameters."""

    scheme: str
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge:
    """The first challenge of a ``WWW-Authenticate`` header (Bearer or Basic with their parameters).
    A header over :data:`MAX_CHALLENGE` characters, without a scheme or with malformed parameters is refused."""
    if not header or len(header) > MAX_CHALLENGE:
        raise OciError("missing or oversized WWW-Authenticate challenge")
    scheme, _, rest = header.strip().partition(" ")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", scheme):
        raise OciError("malformed WWW-Authenticate challenge")
    params: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        found = _PARAM.match(rest, pos)
        if found is None or found.end() == pos:
            if scheme.lower() == "basic" and not params:
                break  # Basic with a token68 or nothing we need
            raise OciError("malformed WWW-Authenticate parameters")
        value = found.group(2) if found.group(2) is not None else found.group(3)
        params.setdefault(found.group(1).lower(), re.sub(r"\\(.)", r"\1", value))
        pos = found.end()
    return Challenge(scheme.lower(), params)


def token_of(body: bytes) -> str:
    """The bearer token of a token server's answer (``token`` or ``access_token``)."""
    doc = _json(body, "token answer")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token or len(token) > 65536 or not token.isprintable():
        raise OciError("the token server's answer holds no usable token")
    return token


# ---------------------------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: tuple[str, str, str] = ("", "", "")
    """(os, architecture, variant) of an index entry."""


def _json(body: bytes, what: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise OciError(f"the {what} is not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, Mapping):
        raise OciError(f"the {what} is not a JSON object")
    return doc


def _descriptor(raw: object, what: str) -> Descriptor:
    if not isinstance(raw, Mapping):
        raise OciError(f"{what} is not an object")
    digest, size, media = raw.get("digest"), raw.get("size"), raw.get("mediaType", "")
    if not is_digest(digest) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise OciError(f"{what} has no valid digest and size")
    platform = raw.get("platform")
    plat = ("", "", "")
    if isinstance(platform, Mapping):
        plat = tuple(str(platform.get(k, ""))[:64] for k in ("os", "architecture", "variant"))  # type: ignore[assignment]
    return Descriptor(str(media)[:256], str(digest), size, plat)


def media_type_of(body: bytes, header: str) -> str:
    """The manifest's media type: its own ``mediaType`` field, else the Content-Type header."""
    doc = _json(body, "manifest")
    media = doc.get("mediaType")
    if isinstance(media, str) and media:
        return media
    if "manifests" in doc:
        return OCI_INDEX
    return header.split(";", 1)[0].strip() or OCI_MANIFEST


def parse_index(body: bytes) -> tuple[Descriptor, ...]:
    """The entries of an image index / manifest list."""
    entries = _json(body, "index").get("manifests")
    if not isinstance(entries, list) or not entries:
        raise OciError("the index lists no manifests")
    return tuple(_descriptor(e, f"index entry {i}") for i, e in enumerate(entries[:MAX_INDEX_ENTRIES]))


def parse_manifest(body: bytes) -> Descriptor:
    """The config descriptor of an image manifest (its layers are never read)."""
    doc = _json(body, "manifest")
    if doc.get("schemaVersion") != 2:
        raise OciError("not a schema 2 manifest")
    return _descriptor(doc.get("config"), "the manifest's config")


def choose_platform(entries: Sequence[Descriptor], os: str, arch: str, variant: str = "") -> Descriptor:
    """The index entry for a node's OS and architecture (a matching variant preferred); attestation
    manifests (``unknown/unknown``) are never chosen."""
    fitting = [e for e in entries if e.platform[0] == os and e.platform[1] == arch]
    if not fitting:
        raise OciError(f"the index has no manifest for {os}/{arch}")
    exact = [e for e in fitting if variant and e.platform[2] == variant]
    return (exact or fitting)[0]


# ---------------------------------------------------------------------------------------------
# Image configs


@dataclass(frozen=True)
class ImageConfig:
    """What detection reads of an image config. ``entrypoint``/``cmd`` are None when not set;
    ``history`` holds (step number from 1, created_by) of the entries kept that have one (at most
    :data:`MAX_HISTORY`, the oldest and the newest), ``history_length`` how many entries the config's
    history had; ``digest`` is the manifest digest the config was resolved from and ``config_digest``
    the sha256 of the config's own bytes (what identifies its content, whatever the platform)."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    history: tuple[tuple[int, str], ...] = ()
    digest: str = ""
    history_length: int = 0
    config_digest: str = ""

    @property
    def size(self) -> int:
        """Characters of text held (what the operator's cache counts)."""
        pairs = self.env + self.labels
        words = (self.entrypoint or ()) + (self.cmd or ())
        return (
            sum(len(a) + len(b) for a, b in pairs)
            + sum(len(w) for w in words)
            + sum(len(t) for _, t in self.history)
            + len(self.working_dir)
            + 64 * (len(pairs) + len(words) + len(self.history) + 1)
        )


def _clip(value: object) -> str:
    if not isinstance(value, str):
        return ""
    if len(value) <= MAX_VALUE_LEN:
        return value
    half = MAX_VALUE_LEN // 2
    return value[:half] + "\n" + value[len(value) - (MAX_VALUE_LEN - half - 1) :]


def _strs(value: object, cap: int) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(_clip(v) for v in value[:cap] if isinstance(v, str))


def parse_config(body: bytes, digest: str = "") -> ImageConfig:
    """An image config blob (already within the reader's size cap) as :class:`ImageConfig`."""
    doc = _json(body, "image config")
    config = doc.get("config")
    config = config if isinstance(config, Mapping) else {}
    env = []
    for item in _strs(config.get("Env"), MAX_ENV) or ():
        name, _, value = item.partition("=")
        env.append((name[:256], value))
    labels = config.get("Labels")
    pairs = sorted(labels.items())[:MAX_LABELS] if isinstance(labels, Mapping) else []
    history = doc.get("history")
    history = history if isinstance(history, list) else []
    steps = []
    for number, entry in kept_history(history):
        created = entry.get("created_by") if isinstance(entry, Mapping) else None
        if isinstance(created, str) and created.strip():
            steps.append((number, _clip(created)))
    return ImageConfig(
        entrypoint=_strs(config.get("Entrypoint"), 10000),
        cmd=_strs(config.get("Cmd"), 10000),
        env=tuple(env),
        working_dir=_clip(config.get("WorkingDir")),
        labels=tuple((_clip(k)[:256], _clip(v)) for k, v in pairs if isinstance(k, str) and isinstance(v, str)),
        history=tuple(steps),
        digest=digest,
        history_length=len(history),
        config_digest="sha256:" + hashlib.sha256(body).hexdigest(),
    )


def kept_history(history: Sequence[Any]) -> list[tuple[int, Any]]:
    """(step number from 1, entry) of the history entries kept: all of them up to :data:`MAX_HISTORY`,
    else the oldest and the newest ``MAX_HISTORY // 2`` (how an image was started and what was done last)."""
    numbered = list(enumerate(history[:MAX_HISTORY], start=1))
    if len(history) <= MAX_HISTORY:
        return numbered
    half = MAX_HISTORY // 2
    tail = len(history) - half
    return numbered[:half] + list(enumerate(history[tail:], start=tail + 1))
