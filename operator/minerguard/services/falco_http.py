"""The Falco endpoint: HTTPS in, authenticated, bounded, parsed, then handed to :class:`RuntimeEvents`.

Wiring only: it serves ``POST /falco`` (aiohttp, which kopf already runs on, on a loop of its
own thread) for Falco's ``http_output`` and falcosidekick's ``webhook`` output, and decides
nothing about detection. Each request, in order:

1. the rate: at most ``rate`` requests a second on average, ``burst`` at once, for all
   senders together; beyond that 429 (before anything else is read);
2. the replica: a passive replica (kopf peering) answers 503, its watch cache is not current
   (the chart's Service selects only the pod labelled ``minerguard.io/falco-endpoint=active``,
   which :meth:`FalcoEndpoint.advertise` keeps on the active replica's own pod);
3. the sender: ``Authorization: Bearer <token>`` (falcosidekick's ``webhook.customHeaders``),
   or HTTP Basic with the token as the password (Falco's ``http_output`` cannot set headers;
   its URL carries ``user:token@``); the token is one key of one Secret in the operator's
   namespace, read through storage and cached for a minute; anything else is 401;
4. the body: at most ``max_body`` bytes (413), a Falco event (:func:`~minerguard.domain.falco.parse_event`),
   else 400 with a one-line reason, and nothing reaches detection;
5. the event: :meth:`RuntimeEvents.take` (stale, replayed and unknown-pod events are answered
   200 with why they were ignored, so that the sender does not retry them).

TLS only: the server will not start without a certificate and key (the chart's, or
cert-manager's in the same Secret shape); both files are read again when they change.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable

from aiohttp import web

from minerguard import observability
from minerguard.config import FalcoSettings
from minerguard.domain.falco import EventInvalid, parse_event
from minerguard.errors import KubeError, NotFound
from minerguard.services.runtime import RuntimeEvents
from minerguard.storage.kubernetes import KubeStorage

log = logging.getLogger(__name__)

PATH = "/falco"
TOKEN_TTL = 60.0
ACTIVE_LABEL = "minerguard.io/falco-endpoint"
"""On the operator's own pod: ``active`` on the replica that takes events, ``standby`` on the others.
The chart's Service selects ``active`` only, so Falco's events go to the replica whose cache is current."""


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` spends one if there is one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self.tokens, self.stamp = float(burst), clock()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1.0:
                return False
            self.tokens -= 1.0
            return True


class Token:
    """The shared secret, read from the Secret through storage, cached for :data:`TOKEN_TTL` seconds."""

    def __init__(self, storage: KubeStorage, namespace: str, secret: str, key: str) -> None:
        self.storage, self.namespace, self.secret, self.key = storage, namespace, secret, key
        self.value, self.read_at = "", float("-inf")

    def current(self) -> str:
        if time.monotonic() - self.read_at >= TOKEN_TTL:
            try:
                self.value = self.storage.get_secret_value(self.namespace, self.secret, self.key)
            except KubeError as exc:  # keep the last token read; none yet refuses everything
                log.warning(
                    "The Falco endpoint's token (Secret %s/%s) cannot be read: %s", self.namespace, self.secret, exc
                )
            self.read_at = time.monotonic()
        return self.value


def presented(header: str) -> str:
    """The token an ``Authorization`` header presents: a Bearer token, or the password of Basic credentials."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return ""


def authorized(header: str, token: str) -> bool:
    given = presented(header)
    return bool(token) and bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _reply(code: int, text: str, **headers: str) -> web.Response:
    observability.RUNTIME_REQUESTS.labels(str(code)).inc()
    return web.Response(status=code, text=text + "\n", headers=headers)


class FalcoEndpoint:
    """The HTTPS server, on its own thread and event loop."""

    def __init__(
        self, settings: FalcoSettings, token: Token, runtime: RuntimeEvents, active: Callable[[], bool]
    ) -> None:
        self.settings = settings
        self.token = token
        self.runtime = runtime
        self.active = active
        self.bucket = TokenBucket(settings.rate, settings.burst)
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()
        self._stamps: tuple[float, float] = (0.0, 0.0)
        self._advertised = ""
        self.acting = False
        """Whether this replica acts (kopf peering), as last asked by :meth:`advertise`: a request never waits on
        the peering object."""

    def advertise(self, storage: KubeStorage, namespace: str, pod: str) -> None:
        """Ask whether this replica acts, and label the operator's own pod ``active`` or ``standby`` when that
        changed (every 2 s, from the app's loop)."""
        self.acting = self.active()
        state = "active" if self.acting else "standby"
        if state == self._advertised:
            return
        try:
            storage.patch_pod_metadata(namespace, pod, {ACTIVE_LABEL: state}, {})
        except NotFound:
            log.info("Falco endpoint: no Pod %s/%s to label (not run in a pod): no Service selects it", namespace, pod)
            self._advertised = state
            return
        except KubeError as exc:
            log.debug("Falco endpoint: Pod %s/%s not labelled %s: %s", namespace, pod, state, exc)
            return
        self._advertised = state
        log.info("Falco endpoint: this replica is %s", state)

    def tls(self) -> ssl.SSLContext:
        if not (self.settings.tls_cert and self.settings.tls_key):
            raise ValueError("the Falco endpoint needs a TLS certificate and key (MINERGUARD_FALCO_TLS_CERT/_KEY)")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load(context)
        return context

    def _load(self, context: ssl.SSLContext) -> None:
        context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        self._stamps = (os.stat(self.settings.tls_cert).st_mtime, os.stat(self.settings.tls_key).st_mtime)

    async def handle(self, request: web.Request) -> web.Response:
        if not self.bucket.take():
            return _reply(429, "too many requests", **{"Retry-After": "1"})
        if not self.acting:
            return _reply(503, "this replica is passive (kopf peering); another one takes events")
        token = await self.loop.run_in_executor(None, self.token.current)
        if not authorized(request.headers.get("Authorization", ""), token):
            return _reply(401, "a Bearer token (or Basic password) is required", **{"WWW-Authenticate": "Bearer"})
        if request.content_length is not None and request.content_length > self.settings.max_body:
            return _reply(413, f"the body is larger than {self.settings.max_body} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _reply(413, f"the body is larger than {self.settings.max_body} bytes")
        try:
            event = parse_event(body)
        except EventInvalid as exc:
            return _reply(400, exc.reason)
        outcome = await self.loop.run_in_executor(None, self.runtime.take, event)
        return _reply(200, outcome)

    async def _serve(self, context: ssl.SSLContext) -> None:
        app = web.Application(client_max_size=self.settings.max_body)
        app.router.add_post(PATH, self.handle)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.address, self.settings.port, ssl_context=context)
        await site.start()
        log.info("Falco endpoint listening on https://%s:%d%s", self.settings.address, self.settings.port, PATH)
        self.ready.set()
        while True:  # certificates renewed in place (cert-manager) are taken for new connections
            await asyncio.sleep(30)
            try:
                stamps = (os.stat(self.settings.tls_cert).st_mtime, os.stat(self.settings.tls_key).st_mtime)
                if stamps != self._stamps:
                    self._load(context)
                    log.info("Falco endpoint: TLS certificate reloaded")
            except (OSError, ssl.SSLError) as exc:
                log.warning("Falco endpoint: TLS certificate not reloaded: %s", exc)

    def start(self) -> None:
        context = self.tls()
        self.acting = self.active()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._serve(context))
            except Exception:
                log.exception("The Falco endpoint stopped")
            finally:
                self.ready.set()

        self.thread = threading.Thread(target=run, name="falco-endpoint", daemon=True)
        self.thread.start()
