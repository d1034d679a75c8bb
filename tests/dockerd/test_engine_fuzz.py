"""No client input makes pydockerd answer 500, hang, or lose its footing (issue 10's audit).

Every Engine API route of dockerd/app.py is driven over its socket with hostile values:
invalid references and names, wrong JSON types, huge and negative numbers, odd unicode, NUL
bytes, path tricks, unknown parameters. First explicit cases, then a property test
(hypothesis) that draws a route, its path values (live objects or hostile text), its query and
its body. The property: a status below 500 (501 for what is not implemented yet), Docker's
`{"message"}` on every error, a complete body, an answer within the client's timeout, and no
traceback in the daemon's log. Containers the fuzz creates are inspected (what was accepted
must be readable) and removed; nothing it creates is started.

Left out on purpose: what reaches a registry (pull, push, auth: their invalid references are
covered by explicit cases, which fail before any connection), the hijacked attach and exec
start (raw streams, tests/dockerd/test_hijack.py), and what only waits (stop or wait on the
running container, followed logs or stats: a wait is the right answer there).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockerd.engine.validate import CONFIG, HOST_CONFIG
from tests.pydockerd_harness import PyDockerd, pydockerd_engine

BUSYBOX_ID = "sha256:80cbd88a5f7ef9f87fe0d5a3bd512e7bcb1e27f31a79208585f0f78cf4ab5824"
VICTIM_CMD = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


@dataclass
class World:
    """The engine and the objects hostile requests are aimed at, kept alive between requests."""

    engine: PyDockerd
    client: httpx.Client
    victim: str = ""  # a running container
    fresh: str = ""  # a created, never started one
    exec_id: str = ""
    log_offset: int = 0  # how far the daemon's log has been read for tracebacks

    def no_new_traceback(self) -> None:
        """The daemon logged no traceback since the last look (every unexpected fault logs one)."""
        with open(self.engine.log_path, "rb") as f:
            f.seek(self.log_offset)
            new = f.read()
        self.log_offset += len(new)
        assert b"Traceback" not in new, new.decode(errors="replace")[-3000:]

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def ensure(self) -> None:
        """Put back what the last request took away (removed, killed, paused, untagged)."""
        if self.request("GET", "/images/busybox/json").status_code != 200:
            assert (
                self.request(
                    "POST", f"/images/{BUSYBOX_ID}/tag", params={"repo": "busybox", "tag": "latest"}
                ).status_code
                == 201
            )
        state = self.request("GET", f"/containers/{self.victim}/json") if self.victim else None
        if state is None or state.status_code != 200:
            created = self.request("POST", "/containers/create", json={"Image": "busybox", "Cmd": VICTIM_CMD})
            assert created.status_code == 201, created.text
            self.victim = created.json()["Id"]
            self.exec_id = ""
            state = self.request("GET", f"/containers/{self.victim}/json")
        if state.json()["State"]["Paused"]:
            self.request("POST", f"/containers/{self.victim}/unpause")
        if not state.json()["State"]["Running"]:
            assert self.request("POST", f"/containers/{self.victim}/start").status_code in (204, 304)
        if not self.fresh or self.request("GET", f"/containers/{self.fresh}/json").status_code != 200:
            self.fresh = self.request(
                "POST", "/containers/create", json={"Image": "busybox", "Cmd": ["true"]}
            ).json()["Id"]
        if not self.exec_id or self.request("GET", f"/exec/{self.exec_id}/json").status_code != 200:
            made = self.request("POST", f"/containers/{self.victim}/exec", json={"Cmd": ["true"]})
            self.exec_id = made.json()["Id"] if made.status_code == 201 else "none"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pydockerd_engine() as engine:
        # One connection per request: a refusal answered before its body was read closes the connection.
        transport = httpx.HTTPTransport(
            uds=str(engine.socket), limits=httpx.Limits(max_keepalive_connections=0)
        )
        with httpx.Client(transport=transport, base_url="http://pydockerd", timeout=60) as client:
            w = World(engine, client)
            w.ensure()
            yield w


def check(world: World, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request; fail on a 5xx (but 501), an error without Docker's message, or a cut body."""
    where = f"{method} {path} {kwargs}"
    try:
        res = world.request(method, path, **kwargs)
    except httpx.HTTPError as exc:  # a timeout (a hang) or a body cut short by a failure
        raise AssertionError(f"{where}: {exc!r}") from None
    assert res.status_code < 500 or res.status_code == 501, f"{where}: {res.status_code} {res.text[:500]}"
    if res.status_code >= 400 and method != "HEAD":
        body = res.json()
        assert isinstance(body, dict) and isinstance(body.get("message"), str), f"{where}: {res.text[:500]}"
    return res


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# --- explicit hostile cases -------------------------------------------------------------------

HUGE = str(2**70)


def explicit_cases(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    v, f, e = w.victim, w.fresh, w.exec_id
    body = {"Image": "busybox"}
    return [
        ("GET", "/images/gensokyo.jp//kirisame/json", {}),
        ("GET", f"/images/{quote('a' * 300)}/json", {}),
        ("GET", "/images/%00/json", {}),
        ("POST", "/images/create", {"params": {"fromImage": "UPPER"}}),
        ("POST", "/images/create", {"params": {"fromImage": "gensokyo.jp//kirisame"}}),
        ("POST", "/images/create", {"params": {"fromImage": "busybox", "tag": "a:b"}}),
        ("POST", "/images/create", {"params": {"fromSrc": "-", "repo": "UPPER"}, "content": b""}),
        ("POST", "/images/create", {"params": {"fromSrc": "-", "tag": "bad tag"}, "content": b""}),
        ("POST", "/images/create", {"params": {"fromSrc": "-", "changes": "BOGUS x"}, "content": b""}),
        ("POST", "/images/create", {"params": {"fromSrc": "-"}, "content": b"\0garbage" * 100}),
        ("POST", "/images/UPPER/push", {}),
        ("POST", "/images/gensokyo.jp//kirisame/push", {}),
        ("POST", "/images/busybox/tag", {"params": {"repo": "x", "tag": "t" * 200}}),
        ("POST", "/images/busybox/tag", {"params": {"repo": "x@sha256:" + "a" * 64}}),
        ("POST", "/images/load", {"content": b"not a tar"}),
        ("GET", "/images/get", {"params": {"names": ["busybox", "UPPER"]}}),
        ("POST", "/images/prune", {"params": {"filters": '{"until":["9999999999999999999999"]}'}}),
        ("POST", "/images/prune", {"params": {"filters": '{"label":{"a":"yes"}}'}}),
        ("GET", "/images/json", {"params": {"filters": '{"reference":["[z-a]"]}'}}),
        ("GET", "/images/json", {"params": {"filters": '{"label":[1]}'}}),
        ("GET", "/containers/json", {"params": {"filters": '{"label":[1]}'}}),
        ("GET", "/containers/json", {"params": {"filters": '{"before":["nope"]}'}}),
        ("GET", "/containers/json", {"params": {"filters": '{"name":["("]}'}}),
        ("GET", "/containers/json", {"params": {"limit": HUGE}}),
        ("GET", "/events", {"params": {"since": HUGE, "until": "1"}}),
        ("GET", "/events", {"params": {"since": "1e309", "until": "1"}}),
        ("GET", "/events", {"params": {"until": "nan"}}),
        ("GET", "/events", {"params": {"filters": '{"label":[1]}', "until": "1"}}),
        ("POST", "/containers/create", {"json": {**body, "HostConfig": {"Memory": 2**70}}}),
        ("POST", "/containers/create", {"json": {**body, "HostConfig": {"Memory": -5}}}),
        ("POST", "/containers/create", {"json": {**body, "HostConfig": {"CpuShares": 2**63}}}),
        (
            "POST",
            "/containers/create",
            {"json": {**body, "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 2**70, "Hard": 1}]}}},
        ),
        ("POST", "/containers/create", {"json": {**body, "HostConfig": {"Binds": ["/tmp:/x\0y"]}}}),
        ("POST", "/containers/create", {"json": {**body, "HostConfig": {"Tmpfs": {"relative": ""}}}}),
        ("POST", "/containers/create", {"json": {**body, "HostConfig": {"LogConfig": {"Type": "bogus"}}}}),
        ("POST", "/containers/create", {"json": {**body, "HostConfig": {"SecurityOpt": ["seccomp"]}}}),
        ("POST", "/containers/create", {"json": {**body, "StopSignal": "SIGBOGUS"}}),
        ("POST", "/containers/create", {"json": {**body, "User": "a:b:c"}}),
        ("POST", "/containers/create", {"json": {**body, "Labels": {"\0": "x"}}}),
        ("POST", "/containers/create", {"json": {"Image": "busybox@sha256:" + "0" * 64}}),
        ("POST", "/containers/create", {"params": {"name": "x" * 300}, "json": body}),
        ("POST", "/containers/create", {"params": {"name": "\u202e"}, "json": body}),
        ("POST", "/containers/create", {"content": b"\xff\xfe"}),
        ("POST", f"/containers/{v}/kill", {"params": {"signal": HUGE}}),
        ("POST", f"/containers/{v}/kill", {"params": {"signal": "-1"}}),
        ("POST", f"/containers/{v}/kill", {"params": {"signal": "0"}}),
        ("POST", f"/containers/{v}/kill", {"params": {"signal": "99"}}),
        ("POST", f"/containers/{v}/resize", {"params": {"h": HUGE, "w": "1"}}),
        ("POST", f"/containers/{v}/resize", {"params": {"h": "-1", "w": "-1"}}),
        ("POST", f"/exec/{e}/resize", {"params": {"h": HUGE, "w": "1"}}),
        ("GET", f"/containers/{v}/logs", {"params": {"stdout": "1", "tail": HUGE}}),
        ("GET", f"/containers/{v}/logs", {"params": {"stdout": "1", "tail": "-5"}}),
        ("GET", f"/containers/{v}/logs", {"params": {"stdout": "1", "since": HUGE, "until": "1e309"}}),
        ("GET", f"/containers/{v}/top", {"params": {"ps_args": "--bogus-option"}}),
        ("GET", f"/containers/{v}/top", {"params": {"ps_args": "-o pid=PID"}}),
        ("GET", f"/containers/{v}/stats", {"params": {"stream": "0"}}),
        ("POST", f"/containers/{v}/update", {"json": {"Memory": 2**70}}),
        ("POST", f"/containers/{v}/update", {"json": {"CpusetCpus": "99999"}}),
        (
            "POST",
            f"/containers/{v}/update",
            {"json": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2**70}}},
        ),
        ("POST", f"/containers/{v}/exec", {"json": {"Cmd": ["true"], "User": "nosuchuser"}}),
        ("POST", f"/containers/{v}/exec", {"json": {"Cmd": ["true"], "Env": [1]}}),
        ("POST", f"/containers/{v}/exec", {"json": {"Cmd": ["true"], "ConsoleSize": [HUGE, 1]}}),
        ("HEAD", f"/containers/{v}/archive", {"params": {"path": "/../../../etc/shadow\0"}}),
        ("GET", f"/containers/{v}/archive", {"params": {"path": "\0"}}),
        ("GET", f"/containers/{f}/archive", {"params": {"path": "/" + "a/" * 300}}),
        ("PUT", f"/containers/{v}/archive", {"params": {"path": "/tmp"}, "content": b"\0" * 10}),
        ("PUT", f"/containers/{v}/archive", {"params": {"path": "relative\0"}, "content": b""}),
        ("POST", f"/containers/{f}/rename", {"params": {"name": "/"}}),
        ("POST", f"/containers/{f}/rename", {"params": {"name": "a" * 300}}),
        ("POST", f"/containers/{f}/stop", {"params": {"t": HUGE}}),
        ("POST", f"/containers/{f}/stop", {"params": {"signal": HUGE}}),
        ("POST", f"/containers/{f}/wait", {"params": {"condition": "\0"}}),
        ("POST", "/containers/prune", {"params": {"filters": '{"until":[null]}'}}),
        ("POST", "/containers/prune", {"params": {"filters": '{"until":null}'}}),
        ("POST", "/networks/prune", {"params": {"filters": '{"until":["0000-00-00"]}'}}),
        ("POST", "/build/prune", {"params": {"filters": "[]"}}),
        ("POST", "/auth", {"content": b"[]"}),
        (
            "POST",
            "/auth",
            {"json": {"username": 1, "serveraddress": "127.0.0.1:1"}},
        ),  # refused before any request
        ("POST", "/containers/create", {"content": b"[" * 100_000 + b"]" * 100_000}),
        ("POST", "/containers/create", {"content": b'{"a":' * 50_000 + b"1" + b"}" * 50_000}),
        ("POST", "/containers/create", {"content": b'{"Image": "busybox", "Memory": 1e400, "Tty": NaN}'}),
        (
            "POST",
            "/containers/prune",
            {"params": {"filters": "[" * 2_000 + "]" * 2_000}},
        ),  # (deeper than Python's stack)
        ("POST", f"/containers/{v}/exec", {"content": b"[" * 100_000 + b"]" * 100_000}),
        ("POST", "/auth", {"content": b"[" * 100_000 + b"]" * 100_000}),
        ("GET", "/v1.41000000000000000000/version", {}),
        ("GET", "/v0.0/version", {}),
    ]


def test_explicit_hostile_requests(world: World) -> None:
    world.ensure()
    failures = []
    for method, path, kwargs in explicit_cases(world):
        try:
            check(world, method, path, **kwargs)
        except AssertionError as exc:
            failures.append(str(exc))
        world.ensure()
    assert not failures, "\n".join(failures)
    world.no_new_traceback()
    assert world.request("GET", f"/containers/{world.victim}/json").json()["State"]["Running"] is True


# --- the property test ------------------------------------------------------------------------

HOSTILE = [
    "", " ", "..", "../..", "/", "//", "%00", "\0", "a" * 4096, "UPPER", "-1", "0", HUGE, "-" + HUGE, "1e309",
    "NaN", "nan", "inf", "true", "null", "[]", "{}", "busybox", "busybox:latest", "sha256:", "sha256:zz",
    "gensokyo.jp//kirisame", "a:b:c", "🐳", "\u202e", "\ud7ff", "\t\n", "\\", "'", '"', "${HOME}", "$(id)",
    "name=value", "label=a=b", "SIGKILL", "SIGTERM", "not-running", "next-exit", "removed",
]  # fmt: skip
text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=24),
    st.integers(min_value=-(2**72), max_value=2**72).map(str),
)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**72), max_value=2**72),
    st.floats(allow_nan=False, allow_infinity=False), text,
)  # fmt: skip
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def typed_value(field: str) -> st.SearchStrategy[Any]:
    """A value for one Config/HostConfig field: usually of its type (to get past the type checks), sometimes not."""
    check = CONFIG.get(field) or HOST_CONFIG.get(field)
    name = getattr(check, "__name__", "")
    likely: st.SearchStrategy[Any] = {
        "_is_int": st.integers(min_value=-(2**72), max_value=2**72),
        "_is_str": text,
        "_is_bool": st.booleans(),
        "_is_str_list": st.lists(text, max_size=3),
        "_is_strslice": st.one_of(text, st.lists(text, max_size=3)),
        "_is_str_map": st.dictionaries(text, text, max_size=3),
    }.get(name, json_value)
    return st.one_of(likely, likely, json_value)


create_body = st.fixed_dictionaries(
    {"Image": st.one_of(st.just("busybox"), st.just("busybox"), text)},
    optional={
        **{k: typed_value(k) for k in CONFIG if k not in ("HostConfig", "Image")},
        "HostConfig": st.fixed_dictionaries({}, optional={k: typed_value(k) for k in HOST_CONFIG}),
    },
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # {c}: a container, {i}: an image, {e}: an exec
    params: tuple[str, ...] = ()
    body: str = ""  # "json", "create", "bytes" or ""
    forced: tuple[tuple[str, str], ...] = ()  # parameters set whatever is drawn (so that nothing only waits)


ROUTES = [
    Route("GET", "/_ping"), Route("HEAD", "/_ping"), Route("GET", "/version"), Route("GET", "/info"),
    Route("GET", "/system/df"), Route("GET", "/events", ("since", "until", "filters"), forced=(("until", "1"),)),
    Route("POST", "/build/prune", ("filters", "all", "keep-storage")), Route("POST", "/networks/prune", ("filters",)),
    Route("POST", "/volumes/prune", ("filters",)), Route("POST", "/build", ("t", "dockerfile"), "bytes"),
    Route("GET", "/images/json", ("all", "filters", "digests")), Route("POST", "/images/prune", ("filters",)),
    Route("POST", "/images/load", ("quiet",), "bytes"), Route("GET", "/images/get", ("names",)),
    Route("GET", "/images/{i}/get"), Route("GET", "/images/{i}/json"), Route("GET", "/images/{i}/history"),
    Route("POST", "/images/{i}/tag", ("repo", "tag")), Route("DELETE", "/images/{i}", ("force", "noprune")),
    Route("POST", "/images/create", ("repo", "tag", "changes", "message", "platform"), "bytes", forced=(("fromSrc", "-"),)),
    Route("POST", "/containers/create", ("name", "platform"), "create"),
    Route("POST", "/containers/create", ("name",), "json"),
    Route("GET", "/containers/json", ("all", "limit", "size", "filters")),
    Route("GET", "/containers/{c}/json", ("size",)), Route("GET", "/containers/{c}/top", ("ps_args",)),
    Route("GET", "/containers/{c}/stats", ("one-shot",), forced=(("stream", "0"),)),
    Route("POST", "/containers/{c}/update", (), "json"), Route("POST", "/containers/{c}/start", ("detachKeys",)),
    Route("POST", "/containers/{f}/stop", ("t", "signal")), Route("POST", "/containers/{f}/restart", ("t",)),
    Route("POST", "/containers/{c}/kill", ("signal",)), Route("POST", "/containers/{c}/pause"),
    Route("POST", "/containers/{c}/unpause"), Route("POST", "/containers/{f}/wait", ("condition",)),
    Route("POST", "/containers/{c}/rename", ("name",)), Route("DELETE", "/containers/{c}", ("force", "v", "link")),
    Route("GET", "/containers/{c}/logs", ("stdout", "stderr", "since", "until", "timestamps", "tail")),
    Route("POST", "/containers/{c}/resize", ("h", "w")), Route("POST", "/containers/{c}/exec", (), "json"),
    Route("GET", "/exec/{e}/json"), Route("POST", "/exec/{e}/resize", ("h", "w")),
    Route("HEAD", "/containers/{c}/archive", ("path",)), Route("GET", "/containers/{c}/archive", ("path",)),
    Route("PUT", "/containers/{c}/archive", ("path", "noOverwriteDirNonDir", "copyUIDGID"), "bytes"),
    Route("GET", "/containers/{c}/export"), Route("GET", "/containers/{c}/changes"),
    Route("POST", "/containers/prune", ("filters",)),
]  # fmt: skip


@dataclass(frozen=True)
class Drawn:
    route: Route
    live: str  # which object the path names: "victim", "fresh", "busybox", "exec" or "hostile"
    hostile: str
    params: dict[str, Any]
    body: dict[str, Any]
    prefix: str


@st.composite
def requests(draw: st.DrawFn) -> Drawn:
    route = draw(st.sampled_from(ROUTES))
    params = draw(
        st.dictionaries(st.sampled_from([*route.params, "bogus"]), text, max_size=len(route.params) + 1)
    )
    if "filters" in params and draw(st.booleans()):
        keys = st.sampled_from(["label", "label!", "until", "dangling", "reference", "bogus"])
        params["filters"] = json.dumps(
            draw(st.one_of(json_value, st.dictionaries(keys, json_value, max_size=2)))
        )
    params.update(dict(route.forced))
    body: dict[str, Any] = {}
    if route.body == "create":
        body = {"json": draw(create_body)}
    elif route.body == "json":
        body = {"content": json.dumps(draw(json_value)).encode()}
    elif route.body == "bytes":
        body = {"content": draw(st.binary(max_size=2048))}
    return Drawn(
        route=route,
        live=draw(st.sampled_from(["victim", "fresh", "busybox", "exec", "hostile"])),
        hostile=draw(text),
        params=params,
        body=body,
        prefix=draw(st.sampled_from(["", "", "/v1.41", "/v1.24", "/v1.99", "/v1.0"])),
    )


@settings(
    max_examples=400, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)  # fmt: skip
@given(drawn=requests())
def test_hostile_requests_never_fail_the_server(world: World, drawn: Drawn) -> None:
    world.ensure()
    hostile = drawn.hostile
    values = {
        "{c}": {"victim": world.victim, "fresh": world.fresh}.get(drawn.live, hostile),
        "{f}": world.fresh
        if drawn.live != "hostile"
        else hostile,  # never the running one: stop and wait only wait
        "{i}": "busybox" if drawn.live == "busybox" else hostile,
        "{e}": world.exec_id if drawn.live == "exec" else hostile,
    }
    path = drawn.route.path
    for key, value in values.items():
        path = path.replace(key, quote(value))
    res = check(world, drawn.route.method, drawn.prefix + path, params=drawn.params, **drawn.body)
    if drawn.route.body == "create" and res.status_code == 201:
        # What create accepted must be readable, and it goes again (nothing fuzzed is started).
        cid = res.json()["Id"]
        assert check(world, "GET", f"/containers/{cid}/json").status_code == 200
        assert check(world, "DELETE", f"/containers/{cid}", params={"force": "1"}).status_code == 204
    world.no_new_traceback()
