"""The operator's /metrics endpoint. Plain HTTP by default (Prometheus' pod annotations, a
ServiceMonitor); with `--metrics-secure`, HTTPS where every request carries a bearer token that
the API server authenticates (TokenReview) and authorises for GET on the non-resource URL
/metrics (SubjectAccessReview), as controller-runtime's metrics server does with
WithAuthenticationAndAuthorization. Bind Prometheus' ServiceAccount to the ClusterRole
quantfleet-metrics-reader to let it scrape. Tokens are never logged or kept, only a hash of
each for a minute with its verdict."""

from __future__ import annotations

import datetime
import hashlib
import logging
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

PATH = "/metrics"
# How long a token's verdict is reused (controller-runtime's authenticator caches for 2 min).
VERDICT_SECONDS = 60.0


class MetricsAuth:
    """HTTP status for a bearer token: 200 allowed, 401 not authenticated, 403 not allowed."""

    def __init__(self, api: client.ApiClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.clock = clock
        self._verdicts: dict[str, tuple[float, HTTPStatus]] = {}
        self._lock = threading.Lock()

    def status(self, token: str | None) -> HTTPStatus:
        if not token:
            return HTTPStatus.UNAUTHORIZED
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        with self._lock:
            cached = self._verdicts.get(key)
        if cached and cached[0] > now:
            return cached[1]
        verdict = self._review(token)
        with self._lock:
            self._verdicts = {k: v for k, v in self._verdicts.items() if v[0] > now}
            self._verdicts[key] = (now + VERDICT_SECONDS, verdict)
        return verdict

    def _review(self, token: str) -> HTTPStatus:
        review = client.AuthenticationV1Api(self.api).create_token_review(
            {"spec": {"token": token}}
        )
        if not review.status.authenticated:
            return HTTPStatus.UNAUTHORIZED
        user = review.status.user
        access = client.AuthorizationV1Api(self.api).create_subject_access_review(
            {
                "spec": {
                    "user": user.username,
                    "groups": user.groups,
                    "uid": user.uid,
                    "extra": user.extra,
                    "nonResourceAttributes": {"path": PATH, "verb": "get"},
                }
            }
        )
        if not access.status.allowed:
            log.info("Metrics scrape by %s denied: %s", user.username, access.status.reason or "")
            return HTTPStatus.FORBIDDEN
        return HTTPStatus.OK


def serve_metrics(
    port: int, auth: MetricsAuth | None = None, cert_dir: Path | None = None
) -> ThreadingHTTPServer:
    """Serve the default registry on `port` in a daemon thread: plain HTTP without `auth`;
    with it HTTPS, from `cert_dir`'s tls.crt and tls.key or a self-signed certificate."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != PATH:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            if auth is not None:
                header = self.headers.get("Authorization", "")
                token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
                try:
                    status = auth.status(token)
                except client.ApiException as error:
                    log.warning("Metrics authorization failed: API server said %s", error.status)
                    status = HTTPStatus.SERVICE_UNAVAILABLE
                if status != HTTPStatus.OK:
                    self.send_error(status)
                    return
            body = generate_latest(REGISTRY)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a scrape every 30 s is not news."""

    server = ThreadingHTTPServer(("", port), Handler)
    if auth is not None:
        cert, key = (
            (cert_dir / "tls.crt", cert_dir / "tls.key")
            if cert_dir
            else self_signed(Path(tempfile.mkdtemp(prefix="metrics-tls-")))
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        # The handshake happens on a request's first read, in its own thread: a client stalling
        # in it holds only that thread, not the accept loop.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed serving certificate and its key, written to `folder`; (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quantfleet-operator-metrics")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("quantfleet-operator-metrics")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
