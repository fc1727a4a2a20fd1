"""The registry reader: the one place the operator talks to image registries (OCI distribution API).

Given an image reference (and the digest the node resolved it to, when the pod status has one) it
reads the manifest (an index is resolved to the manifest for the node's OS/architecture) and the
config blob, and nothing else: **layers are never pulled**. Every answer is parsed by the pure
:mod:`minerguard.domain.oci`; every failure comes out as :class:`RegistryError`.

Bounds: connect and read timeouts and a deadline per request, manifests and tokens ≤ 1 MiB, the
config ≤ ``max_config_bytes`` (1 MiB; a larger descriptor is refused before any byte is read, a
body that grows past it is cut off), at most 3 redirects (no loops, credentials never follow a
redirect to another host), and a per-registry rate limit (token bucket). Digests are verified: a
manifest or config whose bytes do not hash to the digest asked for is refused.

Auth: anonymous first; on a ``Bearer`` challenge a token is asked from the realm (with the
registry's credentials from the one docker-config Secret the chart names, when it has some), on
``Basic`` those credentials are sent. Only registries the settings allow are contacted, and unless
listed explicitly never a loopback, link-local or private address (a pod's image reference must
not turn the operator into a probe of the cluster network).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from minerguard.config import RegistrySettings
from minerguard.domain import oci
from minerguard.errors import MinerguardError

MAX_MANIFEST = 1 << 20
MAX_REDIRECTS = 3
T = TypeVar("T")


class RegistryError(MinerguardError):
    """A registry could not be read, refused, or answered something unusable. ``reason`` is a short
    CamelCase word for metrics and conditions (Unreachable, Refused, TooLarge, Invalid, NotAllowed...)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_docker_config(raw: bytes | str) -> dict[str, tuple[str, str]]:
    """Registry host → (user, password) of a ``.dockerconfigjson``; entries it cannot read are left out."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    auths = doc.get("auths") if isinstance(doc, dict) else None
    out: dict[str, tuple[str, str]] = {}
    for key, entry in (auths or {}).items() if isinstance(auths, dict) else ():
        if not isinstance(entry, dict) or not isinstance(key, str):
            continue
        user, password = entry.get("username"), entry.get("password")
        if isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                continue
        if isinstance(user, str) and isinstance(password, str):
            host = urlsplit(key if "://" in key else f"https://{key}").netloc
            out[oci.DOCKER_HUB if host in ("docker.io", "index.docker.io") else host] = (user, password)
    return out


def read_credentials(path: str) -> dict[str, tuple[str, str]]:
    """The registry credentials of the docker-config file at ``path`` (the chart's one Secret, mounted); none
    without a path. An unreadable file is an error at start, not a silent anonymous operator."""
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            return parse_docker_config(f.read(1 << 20))
    except OSError as exc:
        raise ValueError(f"MINERGUARD_IMAGES_CREDENTIALS_FILE={path!r} cannot be read: {exc}") from None


class _Bucket:
    """A token bucket: ``rate`` requests a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()
        self.lock = threading.Lock()

    def wait(self, deadline: float) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
                self.at = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                delay = (1 - self.tokens) / self.rate
            if time.monotonic() + delay > deadline:
                raise RegistryError("the registry's rate limit leaves no time for this request", "RateLimited")
            time.sleep(delay)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""


class RegistryReader:
    """Reads image configs; thread-safe (tokens and rate limits are shared)."""

    def __init__(self, settings: RegistrySettings, credentials: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.settings = settings
        self.credentials = dict(credentials or {})
        timeout = urllib3.Timeout(connect=settings.timeout, read=settings.timeout)
        self._http = urllib3.PoolManager(timeout=timeout, retries=False, maxsize=max(1, settings.concurrency))
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    # -- policy ---------------------------------------------------------------------------

    def allowed(self, host: str) -> bool:
        """Whether the settings let the operator contact this registry host (host[:port])."""
        listed = set(self.settings.registries) | set(self.settings.insecure)
        if host in listed:
            return True
        if self.settings.registries:
            return False
        name = urlsplit(f"//{host}").hostname or ""
        if name == "localhost":
            return False
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return True
        return address.is_global

    def _scheme(self, host: str) -> str:
        return "http" if host in self.settings.insecure else "https"

    # -- reading --------------------------------------------------------------------------

    def read_config(self, ref: oci.Reference, platform: Platform) -> tuple[str, oci.ImageConfig]:
        """(the manifest digest the reference resolved to, the image config for the platform)."""
        if not self.allowed(ref.registry):
            raise RegistryError(f"registry {ref.registry} is not among those the operator may read", "NotAllowed")
        deadline = time.monotonic() + 4 * self.settings.timeout
        body, media, digest = self._manifest(ref, ref.ref, deadline)
        if media in oci.INDEX_TYPES:
            entry = _invalid(lambda: oci.choose_platform(oci.parse_index(body), *_plat(platform)))
            body, media, _ = self._manifest(ref, entry.digest, deadline)
        if media not in oci.MANIFEST_TYPES:
            raise RegistryError(f"unsupported manifest type {media[:100]}", "Invalid")
        config = _invalid(lambda: oci.parse_manifest(body))
        if config.size > self.settings.max_config_bytes:
            raise RegistryError(
                f"image config of {config.size} bytes is over the {self.settings.max_config_bytes} byte cap", "TooLarge"
            )
        blob = self._get(ref, f"blobs/{config.digest}", deadline, self.settings.max_config_bytes, accept="*/*")
        _verify(blob.body, config.digest)
        return digest, _invalid(lambda: oci.parse_config(blob.body, digest))

    def _manifest(self, ref: oci.Reference, which: str, deadline: float) -> tuple[bytes, str, str]:
        answer = self._get(ref, f"manifests/{which}", deadline, MAX_MANIFEST, accept=oci.ACCEPT)
        digest = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        if oci.is_digest(which):
            _verify(answer.body, which)
        media = _invalid(lambda: oci.media_type_of(answer.body, answer.headers.get("content-type", "")))
        return answer.body, media, digest

    def _get(self, ref: oci.Reference, path: str, deadline: float, cap: int, accept: str) -> _Answer:
        url = f"{self._scheme(ref.registry)}://{ref.registry}/v2/{ref.repository}/{path}"
        scope = f"repository:{ref.repository}:pull"
        auth = self._cached_token(ref.registry, scope)
        answer = self._request(url, ref.registry, deadline, cap, accept, auth)
        if answer.status == 401:
            auth = self._authenticate(ref.registry, scope, answer.headers.get("www-authenticate", ""), deadline)
            answer = self._request(url, ref.registry, deadline, cap, accept, auth)
        if answer.status == 404:
            raise RegistryError(f"{ref.registry}/{ref.repository}: {path.split('/')[0][:-1]} not found", "NotFound")
        if answer.status in (401, 403):
            raise RegistryError(f"{ref.registry} refused access ({answer.status})", "Refused")
        if answer.status == 429 or answer.status >= 500:
            raise RegistryError(f"{ref.registry} answered {answer.status}", "Unavailable")
        if answer.status != 200:
            raise RegistryError(f"{ref.registry} answered {answer.status}", "Invalid")
        return answer

    def _request(self, url: str, host: str, deadline: float, cap: int, accept: str, auth: str) -> _Answer:
        """One GET, following at most :data:`MAX_REDIRECTS` redirects (credentials only to ``host``)."""
        for _ in range(MAX_REDIRECTS + 1):
            target = urlsplit(url)
            if target.scheme not in ("http", "https") or not self.allowed(target.netloc):
                raise RegistryError(f"refused to follow to {target.scheme}://{target.netloc[:100]}", "NotAllowed")
            if target.scheme == "http" and target.netloc not in self.settings.insecure:
                raise RegistryError(f"refused plain http to {target.netloc[:100]}", "NotAllowed")
            headers = {"Accept": accept, "User-Agent": "minerguard"}
            if auth and target.netloc == host:
                headers["Authorization"] = auth
            answer = self._fetch(url, target.netloc, headers, deadline, cap)
            if answer.status in (301, 302, 303, 307, 308):
                url = urljoin(url, answer.headers.get("location", "")[:4096])
                continue
            return answer
        raise RegistryError(f"more than {MAX_REDIRECTS} redirects", "Invalid")

    def _fetch(self, url: str, host: str, headers: dict[str, str], deadline: float, cap: int) -> _Answer:
        self._bucket(host).wait(deadline)
        try:
            response = self._http.request(
                "GET", url, headers=headers, preload_content=False, redirect=False, retries=False
            )
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
            raise RegistryError(f"{host}: {type(exc).__name__}: {str(exc)[:200]}", "Unreachable") from None
        try:
            status = response.status
            length = response.headers.get("content-length", "")
            if status == 200 and length.isdigit() and int(length) > cap:
                raise RegistryError(f"{host}: answer of {length} bytes is over the {cap} byte cap", "TooLarge")
            body = bytearray()
            for chunk in response.stream(65536):
                body += chunk
                if len(body) > cap:
                    raise RegistryError(f"{host}: answer over the {cap} byte cap", "TooLarge")
                if time.monotonic() > deadline:
                    raise RegistryError(f"{host}: answer too slow", "Unreachable")
            return _Answer(status, bytes(body), {k.lower(): v for k, v in response.headers.items()})
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise RegistryError(f"{host}: {type(exc).__name__}: {str(exc)[:200]}", "Unreachable") from None
        finally:
            response.release_conn()

    def _bucket(self, host: str) -> _Bucket:
        with self._lock:
            bucket = self._buckets.get(host)
            if bucket is None:
                rate = max(0.1, self.settings.rate)
                bucket = self._buckets[host] = _Bucket(rate, max(1.0, 2 * rate))
            return bucket

    # -- auth -----------------------------------------------------------------------------

    def _cached_token(self, host: str, scope: str) -> str:
        with self._lock:
            found = self._tokens.get((host, scope))
        return found[0] if found is not None and found[1] > time.monotonic() else ""

    def _authenticate(self, host: str, scope: str, header: str, deadline: float) -> str:
        challenge = _invalid(lambda: oci.parse_challenge(header), "Refused")
        creds = self.credentials.get(host)
        basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode() if creds else ""
        if challenge.scheme == "basic":
            if not basic:
                raise RegistryError(f"{host} asks for credentials the operator was not given", "Refused")
            return basic
        if challenge.scheme != "bearer" or not challenge.params.get("realm"):
            raise RegistryError(f"{host}: unsupported auth challenge {challenge.scheme[:20]}", "Refused")
        query = {"scope": scope} | ({"service": challenge.params["service"]} if "service" in challenge.params else {})
        realm = challenge.params["realm"]
        sep = "&" if "?" in realm else "?"
        realm_host = urlsplit(realm).netloc
        answer = self._request(f"{realm}{sep}{urlencode(query)}", realm_host, deadline, MAX_MANIFEST, "*/*", basic)
        if answer.status != 200:
            raise RegistryError(f"{host}: the token server answered {answer.status}", "Refused")
        token = "Bearer " + _invalid(lambda: oci.token_of(answer.body), "Refused")
        expires = _expires_in(answer.body)
        with self._lock:
            self._tokens[(host, scope)] = (token, time.monotonic() + expires)
            if len(self._tokens) > 4096:
                self._tokens.clear()
        return token


def _expires_in(body: bytes) -> float:
    try:
        value = json.loads(body).get("expires_in", 60)
    except (ValueError, AttributeError):
        return 60.0
    return float(min(max(value, 0), 3600)) * 0.9 if isinstance(value, int | float) else 60.0


def _plat(platform: Platform) -> tuple[str, str, str]:
    return platform.os, platform.architecture, platform.variant


def _verify(body: bytes, digest: str) -> None:
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise RegistryError(f"the registry's bytes do not match {digest}", "Invalid")


def _invalid(parse: Callable[[], T], reason: str = "Invalid") -> T:
    try:
        return parse()
    except oci.OciError as exc:
        raise RegistryError(str(exc), reason) from None
