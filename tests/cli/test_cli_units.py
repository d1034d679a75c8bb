"""The pure parts of pydocker, exercised directly: the Go-template subset, the option
parser, Docker's value syntaxes and output wording, the frame demultiplexer."""

from __future__ import annotations

import struct

import pytest

from cli.commands.common import api_timestamp, parse_go_duration
from cli.flags import Command, Opt, UsageError, parse
from cli.formatting import bytes_size, human_duration, human_size, render_rows, tabulate
from cli.runopts import ram_in_bytes
from cli.streams import Demuxer, _DetachScanner, parse_detach_keys
from cli.template import Template, TemplateError, go_str, render

DATA = {
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Health": None, "Pid": 42},
    "Config": {"Labels": {"b": "2", "a": "1"}, "Cmd": ["sleep", "600"], "Env": []},
    "HostConfig": {"Memory": 67108864, "NanoCpus": 1.5e9},
    "Mounts": [{"Source": "/x"}, {"Source": "/y"}],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.State.Status}}", "running"),
        ("{{.Config.Cmd}}", "[sleep 600]"),
        ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.State.Health}}", "<nil>"),
        ("{{.Nope}}", "<no value>"),
        ("{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", "67108864 1.5e+09"),
        ("{{range .Mounts}}{{.Source}};{{end}}", "/x;/y;"),
        ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}} {{end}}", "0=/x 1=/y "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}{{$v}}{{end}}", "a1b2"),
        ("{{range .Config.Env}}x{{else}}empty{{end}}", "empty"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ('{{if eq .State.Status "exited"}}e{{else if .State.Running}}r{{end}}', "r"),
        ("{{with .State}}{{.Pid}}{{end}}", "42"),
        ('{{index .Config.Labels "a"}} {{index .Mounts 1 | json}}', '1 {"Source":"/y"}'),
        ('{{len .Mounts}} {{upper .Name}} {{join .Config.Cmd ","}}', "2 /WEB sleep,600"),
        ('{{printf "%s-%d" .Name .State.Pid}}', "/web-42"),
        ("{{$n := .Name}}{{$n}}{{$n}}", "/web/web"),
        ("a  {{- .Name -}}  b", "a/webb"),
        ("{{(index .Mounts 0).Source}}", "/x"),
        ('{{.Name | printf "%s!"}}', "/web!"),
        ('{{truncate .Name 2}}|{{pad .Name 1 1}}|{{split "a,b" ","}}', "/w| /web |[a b]"),
        ('{{not .State.Running}} {{and 1 0}} {{or 0 "x"}}', "false 0 x"),
    ],
)
def test_template(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    "bad", ["{{nosuch}}", "{{.A", "{{if .A}}x", "{{end}}", "{{.Name 1}}", "{{range .Name}}{{end}}"]
)
def test_template_errors(bad: str) -> None:
    with pytest.raises(TemplateError):
        Template(bad).execute(DATA)


def test_template_callable_fields() -> None:
    labels = {"k": "v"}
    row = {"ID": lambda: "abc", "Label": lambda key: labels.get(key, "")}
    assert render('{{.ID}} {{.Label "k"}} {{.Label "z"}}!', row) == "abc v !"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1.5, "1.5"),
        (0.0001, "0.0001"),
        (1e-5, "1e-05"),
        (100.0, "100"),
        (True, "true"),
    ],
)
def test_go_value_printing(value: object, text: str) -> None:
    assert go_str(value) == text


def test_render_rows_table_json_and_plain() -> None:
    rows = [
        {"ID": lambda: "a1", "Name": lambda: "first"},
        {"ID": lambda: "b2", "Name": lambda: "second-name"},
    ]
    headers = {"ID": "CONTAINER ID", "Name": "NAMES"}
    table = render_rows("table {{.ID}}\\t{{.Name}}", rows, headers)
    assert table == "CONTAINER ID   NAMES\na1             first\nb2             second-name\n"
    assert render_rows("{{.Name}}", rows, headers) == "first\nsecond-name\n"
    assert render_rows("json", rows, headers, json_row=lambda r: {k: v() for k, v in r.items()}).splitlines()[
        0
    ] == (
        '{"ID":"a1","Name":"first"}'  # compact, as Go's json.Marshal
    )
    assert (
        tabulate(["A\tB", "long-cell-here\tx"], minwidth=2, padding=1)
        == "A              B\nlong-cell-here x\n"
    )


def test_units_and_durations() -> None:
    assert human_size(1984000, 3) == "1.98MB" and human_size(1984000) == "1.984MB" and human_size(0) == "0B"
    assert bytes_size(1532000) == "1.461MiB" and bytes_size(25282000000) == "23.55GiB"
    assert [human_duration(s) for s in (0.5, 1, 59, 60, 150, 3600, 7200, 3 * 86400, 20 * 86400)] == [
        "Less than a second", "1 second", "59 seconds", "About a minute", "2 minutes", "About an hour",
        "2 hours", "3 days", "2 weeks",
    ]  # fmt: skip
    assert ram_in_bytes("64m") == 64 << 20 and ram_in_bytes("1.5g") == 3 << 29 and ram_in_bytes("512") == 512
    assert ram_in_bytes("2KiB") == 2048
    with pytest.raises(ValueError):
        ram_in_bytes("lots")
    assert parse_go_duration("1h30m") == 5400 and parse_go_duration("250ms") == 0.25
    assert parse_go_duration("2024-01-01") is None
    assert api_timestamp("10m", now=1000.0) == "400.000000000"
    assert api_timestamp("1700000000.5") == "1700000000.5"
    assert api_timestamp("2024-01-02T03:04:05Z") == "1704164645.000000000"


SPEC = Command(
    "run", "[OPTIONS] IMAGE", "test",
    (Opt("detach", "d"), Opt("interactive", "i"), Opt("tty", "t"), Opt("env", "e", "list"),
     Opt("name", "", "str"), Opt("time", "t2", "int"), Opt("rm", "", "bool"), Opt("hostname", "h", "str")),
    min_args=1, interspersed=False,
)  # fmt: skip


def test_flag_parser_docker_grammar() -> None:
    p = parse(SPEC, ["-dit", "-e", "A=1", "-eB=2", "-e=C=3", "--env=D=4", "--name", "x", "--rm=false", "-h", "hh",
                     "img", "cmd", "-e", "not-an-option"])  # fmt: skip
    assert (p.opts.detach, p.opts.interactive, p.opts.tty, p.opts.rm) == (True, True, True, False)
    assert p.opts.env == ["A=1", "B=2", "C=3", "D=4"] and p.opts.name == "x" and p.opts.hostname == "hh"
    assert p.args == ["img", "cmd", "-e", "not-an-option"]
    assert "name" in p.opts.changed and "time" not in p.opts.changed
    assert parse(SPEC, ["--", "-d"]).args == ["-d"]
    assert parse(SPEC, ["--help"]).opts.help


def test_flag_parser_errors() -> None:
    with pytest.raises(UsageError, match="unknown flag: --nope"):
        parse(SPEC, ["--nope", "img"])
    with pytest.raises(UsageError, match="unknown shorthand flag: 'z' in -dz"):
        parse(SPEC, ["-dz", "img"])
    with pytest.raises(UsageError, match="flag needs an argument: --name"):
        parse(SPEC, ["--name"])
    with pytest.raises(UsageError, match="requires at least 1 argument") as info:
        parse(SPEC, ["-d"])
    assert info.value.status == 1
    interspersed = Command("rm", "C", "t", (Opt("force", "f"),), min_args=1)
    p = parse(interspersed, ["a", "-f", "b"])
    assert p.args == ["a", "b"] and p.opts.force


def test_detach_keys() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-x,y,ctrl-@,ctrl-\\") == b"\x18y\x00\x1c"
    with pytest.raises(ValueError):
        parse_detach_keys("ctrl-pq")
    scanner = _DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == (b"ab", False)  # a possible prefix is held back
    assert scanner.feed(b"c") == (b"\x10c", False)  # ... and released when it was not one
    assert scanner.feed(b"x\x10\x11rest") == (b"x", True)


def test_demuxer_splits_frames_across_reads() -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    demux = Demuxer(out.append, err.append)
    stream = b"".join(
        struct.pack(">BxxxI", kind, len(p)) + p for kind, p in [(1, b"hello "), (2, b"oops"), (1, b"world")]
    )
    for i in range(0, len(stream), 3):  # frames split at awkward places
        demux.feed(stream[i : i + 3])
    assert b"".join(out) == b"hello world" and err == [b"oops"] and demux.leftover() == b""
