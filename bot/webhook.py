"""Webhook mode's settings, checked before the bot starts: where to listen and the secret token.

Telegram signs nothing; the only proof that a POST to the webhook comes from Telegram is the
`X-Telegram-Bot-Api-Secret-Token` header carrying the secret given to `setWebhook`. So webhook
mode always has one: the configured secret, or a random one made at start-up (Telegram is told
it again at every start, so it need not be stored).
"""

from __future__ import annotations

import re
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bot.config import Settings
from bot.errors import NewsdeskError

# Telegram's rule for secret_token: 1-256 characters, A-Z a-z 0-9 _ and - only.
SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\s\[\]]*)):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Webhook:
    url: str
    path: str  # the URL's path, where the local server accepts updates
    host: str
    port: int
    secret: str = field(repr=False)
    generated: bool  # no secret was configured: this one was made for this run


def generate_secret() -> str:
    """32 random bytes in URL-safe base64: 43 characters, all in Telegram's allowed set."""
    return secrets.token_urlsafe(32)


def listen_address(listen: str) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT` or `:PORT` (loopback) as (host, port)."""
    match = LISTEN.fullmatch(listen.strip())
    port = int(match["port"]) if match else 0
    if not match or not 0 <= port < 65536:
        raise NewsdeskError(
            f"--listen {listen!r} is not HOST:PORT (for example 127.0.0.1:8443, or "
            "0.0.0.0:8443 to accept connections from other machines)"
        )
    return match["v6"] or match["host"] or "127.0.0.1", port


def webhook_from(settings: Settings) -> Webhook:
    """The webhook to run, from `NEWSDESK_WEBHOOK_*` (or the `serve` options that set them)."""
    url = settings.webhook_url.strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise NewsdeskError(
            f"--webhook-url {url!r} is not an https:// URL (Telegram only posts to HTTPS; "
            "put the bot behind a reverse proxy that terminates TLS)"
        )
    host, port = listen_address(settings.webhook_listen)
    secret = settings.webhook_secret.get_secret_value()
    if secret and not SECRET.fullmatch(secret):
        raise NewsdeskError(
            "the webhook secret token (--secret-token or NEWSDESK_WEBHOOK_SECRET) must be 1 to "
            "256 characters, each a letter A-Z or a-z, a digit, _ or -"
        )
    return Webhook(
        url=url,
        path=parts.path.lstrip("/"),
        host=host,
        port=port,
        secret=secret or generate_secret(),
        generated=not secret,
    )


def listen_socket(host: str, port: int) -> socket.socket:
    """The webhook server's socket, bound before Telegram is told to post to it: a port in use
    stops the start with one clear line rather than leaving Telegram a webhook nobody answers.
    Port 0 takes any free port; `bound_address` says which."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise NewsdeskError(
            f"the webhook server cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    sock.setblocking(False)  # as tornado's own listening sockets
    return sock


def bound_address(sock: socket.socket) -> str:
    """HOST:PORT (or [v6]:PORT) the socket is bound to."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
