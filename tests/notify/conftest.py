"""Real servers for the notification tests, on loopback with temporary ports.

- `tls`: a private CA and a server certificate it signed (for `localhost` and 127.0.0.1),
  made with `cryptography`, written under a temporary directory.
- `smtp_server(...)`: an aiosmtpd SMTP server (STARTTLS or implicit TLS, AUTH optional)
  that keeps every message it accepts and every login it checked.
- `webhook_server(...)`: an http.server.ThreadingHTTPServer in a thread that records every
  request and answers with scripted statuses (200 once the script is used up).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from notify_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Received,
    SmtpHandler,
    SmtpServer,
    TlsFiles,
    WebhookServer,
    free_port,
    make_tls_files,
)

from vault.config.model import VaultConfig
from vault.journal import Journal


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server(tls: TlsFiles) -> Iterator[Callable[..., SmtpServer]]:
    """`smtp_server(mode="starttls"|"ssl"|"plain", auth=True)` starts a server."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    controllers: list[Controller] = []

    def start(mode: str = "starttls", auth: bool = True) -> SmtpServer:
        server = SmtpServer("localhost", free_port())

        def authenticate(_smtp: Any, _session: Any, _envelope: Any, _mechanism: str,
                         data: Any) -> AuthResult:
            assert isinstance(data, LoginPassword)
            user, password = data.login.decode(), data.password.decode()
            ok = (user, password) == (SMTP_USER, SMTP_PASSWORD)
            server.logins.append((user, password, ok))
            return AuthResult(success=ok, handled=False)  # handled=True would send no reply

        kwargs: dict[str, Any] = {}
        if auth:
            kwargs.update(authenticator=authenticate, auth_required=True)
        if mode == "starttls":
            kwargs.update(tls_context=tls.server_context(), require_starttls=True)
        elif mode == "ssl":
            # aiosmtpd only knows of TLS it negotiated itself (STARTTLS); this socket is TLS
            # from the first byte, so AUTH is safe without it.
            kwargs.update(ssl_context=tls.server_context(), auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        controller = Controller(SmtpHandler(server), hostname="127.0.0.1", port=server.port,
                                server_hostname="localhost", **kwargs)
        controller.start()
        controllers.append(controller)
        return server

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def webhook_server(tls: TlsFiles) -> Iterator[Callable[..., WebhookServer]]:
    """`webhook_server(statuses=[500, 200], https=False)`: answers each POST with the next
    status of the list, then 200; `redirect_to` adds a Location header to 3xx answers."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(statuses: list[int] | None = None, *, https: bool = False,
              redirect_to: str | None = None) -> WebhookServer:
        state = WebhookServer("", list(statuses or []), redirect_to=redirect_to)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = state.statuses.pop(0) if state.statuses else 200
                self.send_response(status)
                if state.redirect_to and 300 <= status < 400:
                    self.send_header("Location", state.redirect_to)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        if https:
            httpd.socket = tls.server_context().wrap_socket(httpd.socket, server_side=True)
        host = "localhost" if https else "127.0.0.1"
        state.url = f"{'https' if https else 'http'}://{host}:{httpd.server_address[1]}/hook"
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        running.append((httpd, thread))
        return state

    yield start
    for httpd, thread in running:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --- vault side -----------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "state" / "journal.db") as opened:
        yield opened


@pytest.fixture
def make_config() -> Callable[..., VaultConfig]:
    """`make_config({...}, {...})`: a VaultConfig with these `[[notifications]]` tables."""

    def make(*notifications: dict[str, Any]) -> VaultConfig:
        return VaultConfig.model_validate({"notifications": list(notifications)})

    return make
