"""`docker import`: an image from a root filesystem tarball (POST /images/create?fromSrc=-).

As dockerd's ImportImage: the upload (plain or gzip/bzip2/xz/zstd) becomes the image's one
layer, uncompressed; the config is an empty container config with the `changes` applied
(a Dockerfile subset: CMD ENTRYPOINT ENV EXPOSE HEALTHCHECK LABEL ONBUILD USER VOLUME
WORKDIR), the message as comment and history. Everything goes into pycontainerd through
the same importer `docker load` uses: the layer, the config and a manifest.json are laid out
as a docker-save directory and handed to containerd.client.import_archive, which stores the
blobs, builds the manifest, unpacks the layer (refusing a hostile one) and names the image.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import time
from typing import IO, TYPE_CHECKING, Any

from common import digest as digests
from containerd.client import import_archive, normalize_name
from containerd.client.errors import ContainerdError, InvalidArgument
from containerd.client.media import host_platform
from dockerd.engine.errors import InvalidParameter

if TYPE_CHECKING:
    from containerd.client import Client

_ALLOWED = (
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "label",
    "onbuild",
    "user",
    "volume",
    "workdir",
)


def target_name(repo: str, tag: str) -> str | None:
    """The image name `repo`[:`tag`] normalised (None without a repo); 400 for a bad one, as dockerd."""
    if not repo:
        return None
    if tag and not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
        raise InvalidParameter("invalid tag format")
    try:
        name = normalize_name(repo)
        if "@" in name:
            raise InvalidParameter("cannot import digest reference")
        # A normalised name always ends in its tag (":latest" at least): the tag parameter replaces it.
        return f"{name.rsplit(':', 1)[0]}:{tag}" if tag else name
    except InvalidArgument as exc:
        text = str(exc)
        if "must be lowercase" in text:
            text = "invalid reference format: repository name must be lowercase"
        raise InvalidParameter(text) from None


def import_rootfs(
    client: Client,
    body: IO[bytes],
    *,
    name: str | None,
    message: str,
    changes: list[str],
    docker_version: str,
    tmp_dir: str,
) -> str:
    """Import the tarball in BODY; returns the image ID (sha256 of its config)."""
    config = apply_changes(changes)
    work = tempfile.mkdtemp(prefix="import-", dir=tmp_dir)
    try:
        diff_id = _write_layer(body, os.path.join(work, "layer.tar"))
        platform = host_platform()
        created = _now()
        image: dict[str, Any] = {
            "architecture": platform.architecture,
            "comment": message,
            "config": config,
            "container_config": empty_config(),
            "created": created,
            "docker_version": docker_version,
            "history": [{"created": created, "comment": message}],
            "os": platform.os,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        if platform.variant:
            image["variant"] = platform.variant
        raw = json.dumps(image, sort_keys=False, separators=(",", ":")).encode()
        config_hex = digests.compute(raw).split(":", 1)[1]
        with open(os.path.join(work, f"{config_hex}.json"), "wb") as f:
            f.write(raw)
        entry = {"Config": f"{config_hex}.json", "RepoTags": [name] if name else [], "Layers": ["layer.tar"]}
        with open(os.path.join(work, "manifest.json"), "w") as f:
            json.dump([entry], f)
        try:
            import_archive(client, work, tmp_dir=tmp_dir)
        except ContainerdError as exc:
            raise InvalidParameter(f"Error processing tar file: {exc}") from None
        return f"sha256:{config_hex}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_layer(body: IO[bytes], path: str) -> str:
    """Decompress BODY into PATH, check it is a tar archive; its diff ID."""
    head = body.read(6)
    body.seek(0)
    plain: Any
    if head[:2] == b"\x1f\x8b":
        plain = gzip.GzipFile(fileobj=body, mode="rb")
    elif head[:3] == b"BZh":
        plain = bz2.BZ2File(body)
    elif head[:6] == b"\xfd7zXZ\x00":
        plain = lzma.LZMAFile(body)
    elif head[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        plain = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
    else:
        plain = body
    digest = digests.Digester()
    try:
        with open(path, "wb") as out:
            while chunk := plain.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        if exc.errno is not None:  # the disk's trouble, not the upload's
            raise
        raise InvalidParameter(f"Error processing tar file: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - zlib, bz2, lzma and zstd errors alike: a corrupt upload
        raise InvalidParameter(f"Error processing tar file: {exc}") from None
    if not os.path.getsize(path):
        # An empty upload is an empty layer, as dockerd has it: a tar archive with no entries.
        end = bytes(2 * tarfile.BLOCKSIZE)
        with open(path, "wb") as out:
            out.write(end)
        return digests.compute(end)
    try:
        with tarfile.open(path, "r:") as tar:
            for _ in tar:
                pass
    except (tarfile.TarError, EOFError):
        raise InvalidParameter("Error processing tar file: archive/tar: invalid tar header") from None
    return digest.digest()


def _now() -> str:
    ns = time.time_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + (f".{frac:09d}".rstrip("0") if frac else "")
        + "Z"
    )


# --- changes: the Dockerfile instructions dockerd applies to an imported (or committed) config -----


def empty_config() -> dict[str, Any]:
    """container.Config{} as dockerd marshals it (omitempty fields left out)."""
    return {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
        "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
    }  # fmt: skip


_ORDER = [
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
    "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
]  # fmt: skip


def apply_changes(changes: list[str], config: dict[str, Any] | None = None) -> dict[str, Any]:
    """CONFIG (default: empty) with the Dockerfile lines in CHANGES applied; 400 for anything else."""
    cfg = dict(config or empty_config())
    for line in _lines(changes):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.lower()
        rest = rest.strip()
        if keyword not in _ALLOWED:
            raise InvalidParameter(f"{keyword} is not a valid change command")
        env = _env_map(cfg)
        if keyword in ("cmd", "entrypoint"):
            cfg["Cmd" if keyword == "cmd" else "Entrypoint"] = _command(rest)
        elif keyword == "env":
            values = dict(e.split("=", 1) if "=" in e else (e, "") for e in cfg.get("Env") or [])
            values.update(_pairs(rest, env, "ENV"))
            cfg["Env"] = [f"{k}={v}" for k, v in values.items()]
        elif keyword == "label":
            cfg["Labels"] = {**(cfg.get("Labels") or {}), **_pairs(rest, env, "LABEL")}
        elif keyword == "expose":
            ports = dict(cfg.get("ExposedPorts") or {})
            for word in _words(rest, env):
                ports.update({p: {} for p in _ports(word)})
            cfg["ExposedPorts"] = ports
        elif keyword == "user":
            cfg["User"] = _word(rest, env)
        elif keyword == "workdir":
            path = _word(rest, env)
            base = cfg.get("WorkingDir") or "/"
            cfg["WorkingDir"] = os.path.normpath(path if path.startswith("/") else os.path.join(base, path))
        elif keyword == "volume":
            paths = _json_list(rest) if rest.startswith("[") else None
            paths = paths if paths is not None else _words(rest, env)
            if not paths or any(not p for p in paths):
                raise InvalidParameter("VOLUME specified can not be an empty string")
            cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{p: {} for p in paths}}
        elif keyword == "onbuild":
            trigger, _, args = rest.partition(" ")
            if trigger.upper() in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidParameter(f"{trigger.upper()} isn't allowed as an ONBUILD trigger")
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), f"{trigger.upper()} {args}".strip()]
        elif keyword == "healthcheck":
            cfg["Healthcheck"] = _healthcheck(rest)
    for key in ("ExposedPorts", "Volumes", "Labels"):  # Go marshals maps with their keys sorted
        if cfg.get(key):
            cfg[key] = dict(sorted(cfg[key].items()))
    return {k: cfg[k] for k in _ORDER if k in cfg}


def _lines(changes: list[str]) -> list[str]:
    out: list[str] = []
    pending = ""
    for line in "\n".join(changes).splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        out.append(pending + stripped)
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _env_map(cfg: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)


def _command(rest: str) -> list[str]:
    parsed = _json_list(rest) if rest.startswith("[") else None
    if parsed is not None:
        return parsed
    return ["/bin/sh", "-c", rest] if rest else ["/bin/sh", "-c"]


def _json_list(text: str) -> list[str] | None:
    """The exec form (a JSON array of strings); None when TEXT is no JSON array (the shell form)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise InvalidParameter("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _pairs(rest: str, env: dict[str, str], what: str) -> dict[str, str]:
    """ENV/LABEL arguments: `k=v k2="v 2"`, or the legacy `key value with spaces`."""
    first = rest.split(None, 1)[0] if rest.strip() else ""
    if not first:
        raise InvalidParameter(f"{what} requires at least one argument")
    if "=" not in first:
        key, _, value = rest.partition(" ")
        value = value.strip()
        if not value:
            raise InvalidParameter(
                f"{what} names can not be blank" if not key else f"{what} must have two arguments"
            )
        return {key: _word(value, env)}
    out = {}
    for word in _words(rest, env):
        if "=" not in word:
            raise InvalidParameter(
                f"Syntax error - can't find = in {word!r}. Must be of the form: name=value"
            )
        key, _, value = word.partition("=")
        if not key:
            raise InvalidParameter(f"{what} names can not be blank")
        out[key] = value
    return out


def _words(text: str, env: dict[str, str]) -> list[str]:
    return _lex(text, env, split=True)


def _word(text: str, env: dict[str, str]) -> str:
    return "".join(_lex(text, env, split=False))


def _lex(text: str, env: dict[str, str], *, split: bool) -> list[str]:
    """The Dockerfile shell lexer: quotes, backslash escapes and $VAR / ${VAR[:-x|:+x]} expansion."""
    words: list[str] = []
    cur: list[str] = []
    started = False
    i, n = 0, len(text)
    quote = ""
    while i < n:
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                cur.append(ch)
            i += 1
            continue
        if ch == "\\" and i + 1 < n and (quote != '"' or text[i + 1] in '"\\$'):
            cur.append(text[i + 1])
            started = True
            i += 2
            continue
        if ch in "'\"" and not quote:
            quote = ch
            started = True
            i += 1
            continue
        if ch == '"' and quote == '"':
            quote = ""
            i += 1
            continue
        if ch == "$":
            value, i = _expand(text, i, env)
            cur.append(value)
            started = True
            continue
        if split and not quote and ch.isspace():
            if started:
                words.append("".join(cur))
                cur, started = [], False
            i += 1
            continue
        cur.append(ch)
        started = True
        i += 1
    if quote:
        raise InvalidParameter(f"unexpected end of statement while looking for matching {quote}")
    if started or not split:
        words.append("".join(cur))
    return words


def _expand(text: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """Expand the variable at text[i] == "$"; (its value, index after it)."""
    if i + 1 < len(text) and text[i + 1] == "{":
        end = text.find("}", i + 2)
        if end < 0:
            raise InvalidParameter("missing '}' in variable substitution")
        inner = text[i + 2 : end]
        match = re.fullmatch(r"(\w+)(?::([-+])(.*))?", inner, re.S)
        if not match:
            raise InvalidParameter(f"bad substitution: ${{{inner}}}")
        name, op, word = match.groups()
        value = env.get(name, "")
        if op == "-":
            value = value or word
        elif op == "+":
            value = word if value else ""
        return value, end + 1
    match = re.match(r"\w+", text[i + 1 :])
    if not match:
        return "$", i + 1
    return env.get(match.group(0), ""), i + 1 + match.end()


def _ports(spec: str) -> list[str]:
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    low, _, high = port.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {port}") from None
    if proto not in ("tcp", "udp", "sctp") or not 0 < first <= last <= 65535:
        raise InvalidParameter(f"invalid port specification: {spec!r}")
    return [f"{p}/{proto}" for p in range(first, last + 1)]


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1000,
    "µs": 1000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def _duration(text: str, flag: str) -> int:
    """A Go duration ("30s", "1m30s") in nanoseconds."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise InvalidParameter(
            f'invalid argument {text!r} for "--{flag}" flag: time: invalid duration {text!r}'
        )
    return int(total)


def _healthcheck(rest: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    text = rest.strip()
    while text.startswith("--"):
        option, _, text = text.partition(" ")
        text = text.lstrip()
        flag, _, value = option[2:].partition("=")
        if flag in ("interval", "timeout", "start-period"):
            options["StartPeriod" if flag == "start-period" else flag.capitalize()] = _duration(value, flag)
        elif flag == "retries":
            try:
                options["Retries"] = int(value)
            except ValueError:
                raise InvalidParameter(f'invalid argument {value!r} for "--retries" flag') from None
        else:
            raise InvalidParameter(f"unknown flag: --{flag}")
    kind, _, args = text.partition(" ")
    kind, args = kind.upper(), args.strip()
    if kind == "NONE":
        if args or options:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidParameter(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
    exec_form = _json_list(args) if args.startswith("[") else None
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", args]
    return {"Test": test, **options}
