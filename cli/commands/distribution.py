"""`pydocker pull`, `push`, `login`, `logout`.

Credentials live in the config directory's config.json as Docker's do:
{"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}}} (Docker Hub under
"https://index.docker.io/v1/"), and go to the daemon as X-Registry-Auth (base64url JSON).
Progress is drawn with plain ANSI cursor moves on a terminal (one line per layer, updated in
place, as the Docker CLI draws it); off a terminal each state change is one line.
"""

from __future__ import annotations

import base64
import json
import os
import sys

from cli.context import CLIError, Context, config_dir
from cli.flags import Command, Opt
from common import atomicfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cli.client import Response
    from cli.flags import Values

HUB_KEY = "https://index.docker.io/v1/"
QUIET = Opt("quiet", "q", "bool", "Suppress verbose output")

SPECS: dict[str, Command] = {
    "pull": Command(
        "pull",
        "[OPTIONS] NAME[:TAG|@DIGEST]",
        "Download an image from a registry",
        (QUIET,),
        min_args=1,
        max_args=1,
    ),
    "push": Command(
        "push", "[OPTIONS] NAME[:TAG]", "Upload an image to a registry", (QUIET,), min_args=1, max_args=1
    ),
    "login": Command(
        "login",
        "[OPTIONS] [SERVER]",
        "Log in to a registry",
        (
            Opt("username", "u", "str", "Username"),
            Opt("password", "p", "str", "Password"),
            Opt("password-stdin", "", "bool", "Take the password from stdin"),
        ),
        max_args=1,
    ),  # fmt: skip
    "logout": Command("logout", "[SERVER]", "Log out from a registry", max_args=1),
}


# --- references and credentials ----------------------------------------------------------------


def split_reference(ref: str) -> tuple[str, str, str]:
    """(registry host or "docker.io", repository as given without tag/digest, tag or "@digest")."""
    name, at, digest = ref.partition("@")
    tag = ""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, _ = name.partition("/")
    domain = first if sep and ("." in first or ":" in first or first == "localhost") else "docker.io"
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = "docker.io"
    return domain, name, (f"@{digest}" if at else tag)


def _server_key(server: str) -> str:
    host = server.split("://", 1)[-1].split("/", 1)[0] if server else "docker.io"
    return HUB_KEY if host in ("docker.io", "index.docker.io", "registry-1.docker.io") else host


def _config_path(ctx: Context) -> str:
    return os.path.join(ctx.config_dir or config_dir(None), "config.json")


def _write_config(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    atomicfile.write_text(path, json.dumps(data, indent="\t") + "\n", 0o600)  # it holds passwords


def registry_auth_header(ctx: Context, server: str) -> dict[str, str]:
    """X-Registry-Auth for SERVER from the saved credentials ({} when there are none)."""
    key = _server_key(server)
    auths = ctx.config.get("auths") if isinstance(ctx.config.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    entry = auths.get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
        return {}
    try:
        username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return {}
    return {"X-Registry-Auth": encode_auth(username, password, key)}


def encode_auth(username: str, password: str, server: str) -> str:
    raw = json.dumps({"username": username, "password": password, "serveraddress": server}).encode()
    return base64.urlsafe_b64encode(raw).decode()


# --- progress --------------------------------------------------------------------------------


class Progress:
    """Docker's JSON messages drawn as the Docker CLI draws them."""

    def __init__(self, ctx: Context, quiet: bool) -> None:
        self.ctx = ctx
        self.quiet = quiet
        self.tty = os.isatty(1)
        self.ids: list[str] = []
        self.failed = False

    def show(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            self.ctx.err(f"{msg.get('error') or detail.get('message')}\n")
            self.failed = True
            return
        status = msg.get("status")
        if self.quiet or not status:
            return
        id_ = str(msg.get("id") or "")
        if not id_:
            self.ctx.out(f"{status}\n")
            self.ids = []
            return
        progress = msg.get("progress") or ""
        line = f"{id_}: {status} {progress}".rstrip()
        if not self.tty:
            if not (msg.get("progressDetail") or {}).get("current"):  # no bar updates off a terminal
                self.ctx.out(line + "\n")
            return
        if id_ not in self.ids:
            self.ids.append(id_)
            self.ctx.out(line + "\n")
            return
        up = len(self.ids) - self.ids.index(id_)
        self.ctx.out(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")

    def consume(self, resp: Response) -> int:
        for msg in resp.json_stream():
            self.show(msg)
        return 1 if self.failed else 0


# --- commands --------------------------------------------------------------------------------


def pull(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    domain, repo, tag = split_reference(args[0])
    if not tag:
        tag = "latest"
        if not opts.quiet:
            ctx.out("Using default tag: latest\n")
    params = {"fromImage": repo, "tag": tag.removeprefix("@")}
    resp = ctx.client.open("POST", "/images/create", params, headers=registry_auth_header(ctx, domain))
    try:
        status = Progress(ctx, opts.quiet).consume(resp)
    finally:
        resp.close()
    if status == 0:
        full = (
            repo
            if domain != "docker.io" or repo.startswith("docker.io/")
            else f"docker.io/{repo if '/' in repo else 'library/' + repo}"
        )
        ctx.out(f"{full}{tag if tag.startswith('@') else ':' + tag}\n")
    return status


def push(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    domain, repo, tag = split_reference(args[0])
    if tag.startswith("@"):
        raise CLIError("pydocker: cannot push a digest reference", 1)
    if not tag:
        tag = "latest"
        if not opts.quiet:
            ctx.out("Using default tag: latest\n")
    from cli.client import quote_path

    resp = ctx.client.open(
        "POST", f"/images/{quote_path(repo)}/push", {"tag": tag}, headers=registry_auth_header(ctx, domain)
    )
    try:
        status = Progress(ctx, opts.quiet).consume(resp)
    finally:
        resp.close()
    if status == 0 and opts.quiet:
        ctx.out(f"{args[0] if ':' in args[0].rsplit('/', 1)[-1] else args[0] + ':' + tag}\n")
    return status


def login(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    server = args[0] if args else ""
    key = _server_key(server)
    username = opts.username or ""
    password = opts.password or ""
    if opts.password and opts.password_stdin:
        raise CLIError("pydocker: --password and --password-stdin are mutually exclusive", 1)
    if opts.password_stdin:
        if not username:
            raise CLIError("pydocker: Must provide --username with --password-stdin", 1)
        password = sys.stdin.read().rstrip("\r\n")
    elif opts.password:
        ctx.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if not username or not password:
        if not os.isatty(0):
            raise CLIError("pydocker: Error: Cannot perform an interactive login from a non TTY device", 1)
        if not username:
            ctx.out("Username: ")
            username = sys.stdin.readline().strip()
        if not password:
            import getpass

            password = getpass.getpass("Password: ")
    if not username or not password:
        raise CLIError("pydocker: Error: Username and password are required", 1)
    _, body = ctx.client.call(
        "POST", "/auth", body={"username": username, "password": password, "serveraddress": key}
    )
    path = _config_path(ctx)
    data = ctx.config  # config.json as loaded at start-up (cli/context.py)
    auths = data.get("auths") if isinstance(data.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    data["auths"] = auths
    _write_config(path, data)
    ctx.out(f"{(body or {}).get('Status') or 'Login Succeeded'}\n")
    return 0


def logout(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    key = _server_key(args[0] if args else "")
    path = _config_path(ctx)
    data = ctx.config  # config.json as loaded at start-up (cli/context.py)
    auths = data.get("auths") if isinstance(data.get("auths"), dict) else {}
    assert isinstance(auths, dict)
    if key not in auths:
        ctx.out(f"Not logged in to {key}\n")
        return 0
    ctx.out(f"Removing login credentials for {key}\n")
    del auths[key]
    data["auths"] = auths
    _write_config(path, data)
    return 0
