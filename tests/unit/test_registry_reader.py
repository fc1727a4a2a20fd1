"""The registry reader and the OCI parsing under it, against hostile answers from a loopback HTTP server."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minerguard.config import RegistrySettings
from minerguard.domain import oci
from minerguard.storage.registry import Platform, RegistryError, RegistryReader, parse_docker_config

pytestmark = pytest.mark.unit


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


# ----------------------------------------------------------------------------- pure parsing


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", ("registry-1.docker.io", "library/nginx", "latest", "")),
        ("docker.io/foo/bar:1.2", ("registry-1.docker.io", "foo/bar", "1.2", "")),
        ("127.0.0.1:5000/x/y:t", ("127.0.0.1:5000", "x/y", "t", "")),
        ("localhost/p@sha256:" + "a" * 64, ("localhost", "p", "", "sha256:" + "a" * 64)),
        ("ghcr.io/o/r:v@sha256:" + "b" * 64, ("ghcr.io", "o/r", "v", "sha256:" + "b" * 64)),
    ],
)
def test_references(image: str, expected: tuple[str, str, str, str]) -> None:
    ref = oci.parse_reference(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("image", ["", " x", "UPPER/x", "x@sha256:12", "a/b:c:d/e", "x:" + "t" * 200])
def test_malformed_references(image: str) -> None:
    with pytest.raises(oci.OciError):
        oci.parse_reference(image)


def test_image_id_digest() -> None:
    d = "sha256:" + "c" * 64
    assert oci.digest_of_image_id(f"docker-pullable://r/x@{d}") == d
    assert oci.digest_of_image_id(d) == d
    assert oci.digest_of_image_id("r/x:latest") == ""


def test_challenges() -> None:
    c = oci.parse_challenge('Bearer realm="https://auth.x/token",service="registry.x",scope="repository:a:pull"')
    assert c.scheme == "bearer" and c.params["realm"] == "https://auth.x/token" and c.params["service"] == "registry.x"
    assert oci.parse_challenge('Basic realm="Registry Realm"').scheme == "basic"
    for bad in ["", "Bearer " + "a" * 9000, '"quoted"', 'Bearer realm="x" junk "', "Bearer ,,,"]:
        with pytest.raises(oci.OciError):
            oci.parse_challenge(bad)


@given(st.text(max_size=300))
def test_challenge_never_crashes(header: str) -> None:
    try:
        oci.parse_challenge(header)
    except oci.OciError:
        pass


@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_manifest_parsing_never_crashes(body: bytes) -> None:
    for parse in (oci.parse_index, oci.parse_manifest, oci.parse_config, oci.token_of):
        try:
            parse(body)
        except oci.OciError:
            pass
    try:
        oci.media_type_of(body, "")
    except oci.OciError:
        pass


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=10), c),
    )
)
def test_json_of_any_shape_is_refused_or_read(doc: Any) -> None:
    body = json.dumps(doc).encode()
    for parse in (oci.parse_index, oci.parse_manifest, oci.parse_config):
        try:
            parse(body)
        except oci.OciError:
            pass


def test_deeply_nested_json_is_refused() -> None:
    with pytest.raises(oci.OciError):
        oci.parse_manifest(b"[" * 100_000)


def test_index_platform_choice() -> None:
    entries = (
        oci.Descriptor(oci.OCI_MANIFEST, "sha256:" + "1" * 64, 1, ("linux", "arm64", "v8")),
        oci.Descriptor(oci.OCI_MANIFEST, "sha256:" + "2" * 64, 1, ("linux", "amd64", "")),
        oci.Descriptor(oci.OCI_MANIFEST, "sha256:" + "3" * 64, 1, ("unknown", "unknown", "")),
    )
    assert oci.choose_platform(entries, "linux", "amd64").digest.endswith("2" * 64)
    assert oci.choose_platform(entries, "linux", "arm64", "v8").digest.endswith("1" * 64)
    with pytest.raises(oci.OciError):
        oci.choose_platform(entries, "windows", "amd64")


def test_docker_config_secret() -> None:
    raw = json.dumps(
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": "dTpw"},
                "r.x:5000": {"username": "a", "password": "b"},
                "bad": 3,
            }
        }
    )
    assert parse_docker_config(raw) == {"registry-1.docker.io": ("u", "p"), "r.x:5000": ("a", "b")}
    assert parse_docker_config("not json") == {}


# ----------------------------------------------------------------------------- a hostile server

Route = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """A loopback HTTP server answering from a table of path → handler."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.end_headers()
                else:
                    route(self)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def json(self, path: str, doc: Any, media: str = "application/json", status: int = 200) -> bytes:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()

        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Content-Type", media)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        self.routes[path] = route
        return body


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()


def reader(server: Server, **kw: Any) -> RegistryReader:
    settings = RegistrySettings(enabled=True, insecure=(server.host,), timeout=3.0, rate=1000.0, **kw)
    return RegistryReader(settings)


def publish(server: Server, repo: str, config: dict[str, Any], tag: str = "t", index: bool = False) -> str:
    cfg = server.json(f"/v2/{repo}/blobs/{digest(json.dumps(config).encode())}", config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": digest(cfg), "size": len(cfg)},
        "layers": [],
    }
    body = json.dumps(manifest).encode()
    server.json(f"/v2/{repo}/manifests/{digest(body)}", body, oci.OCI_MANIFEST)
    top = body
    if index:
        entries = [
            {
                "mediaType": oci.OCI_MANIFEST,
                "digest": "sha256:" + "9" * 64,
                "size": 5,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": oci.OCI_MANIFEST,
                "digest": digest(body),
                "size": len(body),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
        ]
        top = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": entries}).encode()
        server.json(f"/v2/{repo}/manifests/{digest(top)}", top, oci.OCI_INDEX)
    server.json(f"/v2/{repo}/manifests/{tag}", top, oci.OCI_INDEX if index else oci.OCI_MANIFEST)
    return digest(top)


def read(r: RegistryReader, image: str) -> tuple[str, oci.ImageConfig]:
    return r.read_config(oci.parse_reference(image), Platform())


def test_reads_an_index_to_the_platform_config(server: Server) -> None:
    top = publish(server, "a/b", {"config": {"Entrypoint": ["xmrig"]}}, index=True)
    found_digest, cfg = read(reader(server), f"{server.host}/a/b:t")
    assert found_digest == top and cfg.entrypoint == ("xmrig",)
    assert not any("9999" in hit for hit in server.hits)  # only the amd64 manifest was read
    assert all("/blobs/" not in hit or "sha256:" in hit for hit in server.hits)


def test_digest_mismatch_is_refused(server: Server) -> None:
    publish(server, "a/b", {"config": {}})
    fake = "sha256:" + "e" * 64
    server.json(f"/v2/a/b/manifests/{fake}", {"schemaVersion": 2, "config": {"digest": fake, "size": 2}})
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b@{fake}")
    assert err.value.reason == "Invalid"


def test_oversized_config_descriptor_is_refused_before_reading(server: Server) -> None:
    big = "sha256:" + "f" * 64
    server.json(
        "/v2/a/b/manifests/t",
        {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": {"digest": big, "size": 50 << 20}},
    )
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b:t")
    assert err.value.reason == "TooLarge" and not any("/blobs/" in h for h in server.hits)


def test_a_body_growing_past_the_cap_is_cut_off(server: Server) -> None:
    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()
        for _ in range(200):
            h.wfile.write(b" " * 65536)

    server.routes["/v2/a/b/manifests/t"] = endless
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b:t")
    assert err.value.reason == "TooLarge"


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"schemaVersion": 2, "config": {"digest": "md5:1", "size": 1}}', b"{" * 5000]
)
def test_bad_manifests_are_invalid(server: Server, body: bytes) -> None:
    server.json("/v2/a/b/manifests/t", body, oci.OCI_MANIFEST)
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b:t")
    assert err.value.reason == "Invalid"


def test_redirect_loops_stop(server: Server) -> None:
    def loop(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", "/v2/a/b/manifests/t")
        h.end_headers()

    server.routes["/v2/a/b/manifests/t"] = loop
    with pytest.raises(RegistryError, match="redirects"):
        read(reader(server), f"{server.host}/a/b:t")
    assert len(server.hits) == 4


def test_redirect_to_an_unlisted_host_is_refused(server: Server) -> None:
    def away(h: BaseHTTPRequestHandler) -> None:
        h.send_response(307)
        h.send_header("Location", "http://10.1.2.3/x")
        h.end_headers()

    server.routes["/v2/a/b/manifests/t"] = away
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b:t")
    assert err.value.reason == "NotAllowed"


def test_huge_headers_are_an_error_not_a_crash(server: Server) -> None:
    def huge(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        for i in range(150):
            h.send_header(f"X-{i}", "y" * 70000)
        h.end_headers()

    server.routes["/v2/a/b/manifests/t"] = huge
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b:t")
    assert err.value.reason == "Unreachable"


def test_bearer_challenge_is_answered_with_a_token(server: Server) -> None:
    publish(server, "a/b", {"config": {"Cmd": ["x"]}})
    protected = dict(server.routes)
    seen_auth: list[str] = []

    def guard(path: str) -> Route:
        def route(h: BaseHTTPRequestHandler) -> None:
            seen_auth.append(h.headers.get("Authorization", ""))
            if h.headers.get("Authorization") != "Bearer tok":
                h.send_response(401)
                h.send_header("WWW-Authenticate", f'Bearer realm="http://{server.host}/token",service="reg"')
                h.end_headers()
                return
            protected[path](h)

        return route

    for path in protected:
        server.routes[path] = guard(path)
    server.json("/token", {"token": "tok", "expires_in": 300})
    r = reader(server)
    assert read(r, f"{server.host}/a/b:t")[1].cmd == ("x",)
    assert any("scope=repository%3Aa%2Fb%3Apull" in h and "service=reg" in h for h in server.hits)
    token_asks = sum(h.startswith("/token") for h in server.hits)
    read(r, f"{server.host}/a/b:t")
    assert sum(h.startswith("/token") for h in server.hits) == token_asks  # the token is cached


@pytest.mark.parametrize("header", ["", "Negotiate", 'Bearer service="x"', "Bearer " + "x" * 9000])
def test_unusable_challenges_are_refused(server: Server, header: str) -> None:
    def deny(h: BaseHTTPRequestHandler) -> None:
        h.send_response(401)
        if header:
            h.send_header("WWW-Authenticate", header)
        h.end_headers()

    server.routes["/v2/a/b/manifests/t"] = deny
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b:t")
    assert err.value.reason == "Refused"


def test_basic_auth_only_with_credentials(server: Server) -> None:
    def basic(h: BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") == "Basic dTpw":
            h.send_response(404)
        else:
            h.send_response(401)
            h.send_header("WWW-Authenticate", 'Basic realm="r"')
        h.end_headers()

    server.routes["/v2/a/b/manifests/t"] = basic
    with pytest.raises(RegistryError) as err:
        read(reader(server), f"{server.host}/a/b:t")
    assert err.value.reason == "Refused"
    settings = RegistrySettings(enabled=True, insecure=(server.host,), timeout=3.0)
    with pytest.raises(RegistryError) as err:
        RegistryReader(settings, {server.host: ("u", "p")}).read_config(
            oci.parse_reference(f"{server.host}/a/b:t"), Platform()
        )
    assert err.value.reason == "NotFound"


def test_only_allowed_registries_are_contacted() -> None:
    r = RegistryReader(RegistrySettings(enabled=True))
    assert (
        r.allowed("ghcr.io")
        and not r.allowed("127.0.0.1:5000")
        and not r.allowed("10.0.0.1")
        and not r.allowed("localhost:80")
    )
    listed = RegistryReader(RegistrySettings(enabled=True, registries=("ghcr.io",)))
    assert listed.allowed("ghcr.io") and not listed.allowed("quay.io")
    with pytest.raises(RegistryError) as err:
        listed.read_config(oci.parse_reference("quay.io/a/b:1"), Platform())
    assert err.value.reason == "NotAllowed"


def test_unreachable_registry() -> None:
    r = RegistryReader(RegistrySettings(enabled=True, insecure=("127.0.0.1:9",), timeout=1.0))
    with pytest.raises(RegistryError) as err:
        r.read_config(oci.parse_reference("127.0.0.1:9/a/b:1"), Platform())
    assert err.value.reason == "Unreachable"
