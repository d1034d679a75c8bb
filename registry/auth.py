"""Authentication and authorization: htpasswd Basic auth, bearer tokens, per-repository access.

Three modes, as distribution has them:
  none      everyone may do everything;
  htpasswd  every request carries Basic credentials checked against an htpasswd file
            (bcrypt entries, as `htpasswd -B` writes them; like distribution, no other scheme);
  token     requests carry `Authorization: Bearer <token>`; a missing or insufficient token gets
            a `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge; the token
            endpoint (served by pyregistry itself, /token) checks htpasswd credentials and
            signs (HMAC-SHA256, a JWT) a token holding the requested scopes the account may have.

What an account may do is the access list (config `[[access]]`): rules of account pattern,
repository pattern and actions (pull, push, delete, "*"). Without rules an authenticated
account may do everything and an anonymous one nothing, as with distribution's htpasswd.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

from common import atomicfile

ALL_ACTIONS = frozenset({"pull", "push", "delete"})
ANONYMOUS = "anonymous"
_BCRYPT = (b"$2a$", b"$2b$", b"$2y$")


class Htpasswd:
    """An htpasswd file, re-read when it changes; successful checks are cached in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._entries: dict[str, bytes] = {}
        self._ok: dict[tuple[str, bytes], bytes] = {}  # (user, sha256(password)) -> the hash it matched
        self._lock = threading.Lock()
        self.load()

    def load(self) -> None:
        """Read the file; raises OSError / ValueError with a line number for a bad file."""
        entries: dict[str, bytes] = {}
        text = self.path.read_text()
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise ValueError(f"{self.path}:{n}: not user:hash")
            entries[user] = hashed.encode()
        self._entries = entries
        self._mtime = self.path.stat().st_mtime

    def not_bcrypt(self) -> list[str]:
        """Users whose entry is not bcrypt (htpasswd without -B): they can never log in."""
        return [u for u, h in self._entries.items() if not h.startswith(_BCRYPT)]

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self.load()
        except (OSError, ValueError):
            pass  # keep the last good contents

    def check(self, user: str, password: str) -> bool:
        """bcrypt costs tens of ms: call from a worker thread."""
        with self._lock:
            self._refresh()
            hashed = self._entries.get(user)
        if hashed is None or not hashed.startswith(_BCRYPT):
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        if self._ok.get(key) == hashed:
            return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            if len(self._ok) > 4096:
                self._ok.clear()
            self._ok[key] = hashed
        return ok


@dataclass(frozen=True)
class Rule:
    account: str  # fnmatch pattern; "*" is any authenticated account, "anonymous" nobody logged in
    repository: str  # fnmatch pattern on the repository name
    actions: frozenset[str]


class Access:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def allowed(self, account: str | None, repository: str) -> frozenset[str]:
        if not self.rules:
            return ALL_ACTIONS if account else frozenset()
        granted: set[str] = set()
        who = account or ANONYMOUS
        for r in self.rules:
            if account is None and r.account != ANONYMOUS:
                continue
            if fnmatch.fnmatchcase(who, r.account) and fnmatch.fnmatchcase(repository, r.repository):
                granted |= ALL_ACTIONS if "*" in r.actions else r.actions
        return frozenset(granted)

    def catalog_allowed(self, account: str | None) -> bool:
        return account is not None


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """`repository:library/busybox:pull,push` (a name may hold a port's colon: split at the ends)."""
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not kind or not name:
            return None
        return cls(kind, name, frozenset(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """HS256 JWTs as distribution's token auth reads them (iss, sub, aud, exp, nbf, iat, jti, access)."""

    def __init__(self, secret: bytes | None, service: str, issuer: str, expiration: int) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.service = service
        self.issuer = issuer
        self.expiration = expiration

    def issue(self, account: str | None, scopes: list[Scope]) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account or "",
            "aud": self.service,
            "exp": now + self.expiration,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [{"type": s.type, "name": s.name, "actions": sorted(s.actions)} for s in scopes],
        }
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}", now

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token for this service, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        head, body, sig = parts
        want = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(want, _unb64(sig)):
                return None
            header = json.loads(_unb64(head))
            claims = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            return None
        now = time.time()
        if claims.get("aud") != self.service or claims.get("iss") != self.issuer:
            return None
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            return None
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 60:
            return None
        return claims

    @staticmethod
    def grants(claims: dict[str, Any], kind: str, name: str, action: str) -> bool:
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and entry.get("type") == kind and entry.get("name") == name:
                actions = entry.get("actions") or []
                if action in actions or "*" in actions:
                    return True
        return False


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def parse_bearer(header: str | None) -> str | None:
    if not header or not header[:7].lower() == "bearer ":
        return None
    return header[7:].strip() or None


def load_secret(path: Path) -> bytes:
    """The token signing key from a file, or a new one written there (0600) if it does not exist."""
    try:
        data = path.read_bytes().strip()
        if data:
            return data
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    # whole or absent (an empty file left by a crash mid-write is replaced at the next start)
    atomicfile.write_atomic(path, key, 0o600)
    return key
