"""Outbound HTTP: only http(s) to allowlisted hosts, with size caps and no redirects to other hosts."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from kotacerdas import outbound
from kotacerdas.errors import InvalidInput


@pytest.fixture
def web():
    """A loopback web server: /foto.jpg (1000 bytes), /besar (100 kB), /pindah (redirect to /foto.jpg on the same
    host), /keluar (redirect to another host), anything else 404."""
    port = free_port()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/foto.jpg":
                self._answer(200, b"\xff\xd8" + b"x" * 998, "image/jpeg")
            elif self.path == "/besar":
                self._answer(200, b"y" * 100_000, "application/octet-stream", length=False)
            elif self.path == "/pindah":
                self._redirect("/foto.jpg")
            elif self.path == "/keluar":
                self._redirect("http://localhost:1/foto.jpg")
            else:
                self._answer(404, b"tidak ada", "text/plain")

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self._answer(202, b"", "text/plain")

        def _answer(self, status, body, content_type, length=True):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location):
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


ALLOWED = ["127.0.0.1"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1/x", "format"),
        ("file:///etc/passwd", "format"),
        ("javascript:alert(1)", "format"),
        ("http://", "format"),
        ("http://127.0.0.1:abc/", "format"),
        ("http://127.0.0.1/ spasi", "format"),
        ("http://pengguna:sandi@127.0.0.1/", "credentials"),
        ("http://localhost/", "host_not_allowed"),
        ("http://127.0.0.1.evil.example/", "host_not_allowed"),
        ("http://[::1]/", "host_not_allowed"),
    ],
)
def test_urls_outside_the_allowlist_or_not_http_are_refused(url, reason):
    with pytest.raises(InvalidInput) as raised:
        outbound.check_url_allowed(url, allowed_hosts=ALLOWED)

    assert raised.value.errors == [{"field": "url", "reason": reason}]


def test_an_allowlisted_host_passes_whatever_its_case_or_port():
    outbound.check_url_allowed("HTTPS://Lapor.Go.Id:8443/hook?x=1", allowed_hosts=["lapor.go.id"])
    outbound.check_url_allowed("http://127.0.0.1:8080/", allowed_hosts=ALLOWED)


def test_an_empty_allowlist_allows_nothing():
    with pytest.raises(InvalidInput):
        outbound.check_url_allowed("https://lapor.go.id/", allowed_hosts=[])


def test_fetch_bytes_returns_the_body_and_its_type(web):
    body, content_type = outbound.fetch_bytes(f"{web}/foto.jpg", allowed_hosts=ALLOWED, max_bytes=5000)

    assert len(body) == 1000 and body.startswith(b"\xff\xd8")
    assert content_type == "image/jpeg"


def test_fetch_bytes_follows_a_redirect_on_the_same_host_only(web):
    body, _type = outbound.fetch_bytes(f"{web}/pindah", allowed_hosts=ALLOWED, max_bytes=5000)
    assert len(body) == 1000

    with pytest.raises(InvalidInput) as raised:
        outbound.fetch_bytes(f"{web}/keluar", allowed_hosts=[*ALLOWED, "localhost"], max_bytes=5000)
    assert raised.value.errors[0]["reason"] == "redirect"


@pytest.mark.parametrize(
    ("path", "reason"), [("/foto.jpg", "too_large"), ("/besar", "too_large"), ("/x", "http_status")]
)
def test_fetch_bytes_stops_at_the_size_cap_and_on_errors(web, path, reason):
    with pytest.raises(InvalidInput) as raised:
        outbound.fetch_bytes(f"{web}{path}", allowed_hosts=ALLOWED, max_bytes=500)

    assert raised.value.errors[0]["reason"] == reason


def test_an_unreachable_host_is_a_clear_error():
    with pytest.raises(InvalidInput) as raised:
        outbound.fetch_bytes(f"http://127.0.0.1:{free_port()}/", allowed_hosts=ALLOWED, max_bytes=10, timeout=2)

    assert raised.value.errors[0]["reason"] == "unreachable"


def test_post_json_answers_the_status(web):
    assert outbound.post_json(f"{web}/hook", allowed_hosts=ALLOWED, body=b"{}", headers={}) == 202
    with pytest.raises(InvalidInput):
        outbound.post_json("http://10.0.0.1/hook", allowed_hosts=ALLOWED, body=b"{}", headers={})
