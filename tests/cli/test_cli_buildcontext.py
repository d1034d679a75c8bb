"""The build context pydocker sends, without an engine: .dockerignore read and matched with
moby's patternmatcher rules, the Dockerfile and .dockerignore always sent, a Dockerfile from
outside the context added under a name .dockerignore hides, tars without record padding."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from cli import buildcontext as bc
from tests.tarread import member


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**", "file", True),
        ("**", "dir/file", True),
        ("**/", "file", True),
        ("dir/**", "dir/file", True),
        ("dir/**", "dir/dir2/file", True),
        ("dir/**", "dirfile", False),
        ("**/file", "file", True),
        ("**/file", "dir/dir/file", True),
        ("dir/**/file", "dir/file", True),
        ("dir/**/file", "dir/a/b/file", True),
        ("**/dir2/*", "dir/dir2/file", True),
        ("**file", "dir/file", True),
        ("**.txt", "a/b.txt", True),  # a literal suffix after a leading "**"
        ("**/file", "dir/myfile", False),
        ("**file", "dir/myfile", True),
        ("*", "file", True),
        ("*", "dir/file", True),  # through its parent "dir"
        ("*/*", "dir/file", True),
        ("*.go", "dir/a.go", False),
        ("abc.def", "abcdef", False),
        ("abc.def", "abc.def", True),
        ("abc?def", "abcxdef", True),
        ("abc?def", "abc/def", False),
        ("[a-c]*", "b-file", True),
        ("[a-c]*", "d-file", False),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a+b(c)", "a+b(c)", True),
        ("dir", "dir/sub/file", True),
        ("dir/sub", "dir/subfile", False),
    ],
)
def test_pattern(pattern: str, path: str, matches: bool) -> None:
    assert bc.PatternMatcher([pattern]).matches(path) is matches


def test_exceptions_and_order() -> None:
    pm = bc.PatternMatcher(["docs", "!docs/README.md", "**/*.md", "!keep.md"])
    assert pm.matches("docs/other")
    assert pm.matches("docs/README.md")  # "**/*.md" comes after the exception: the last match wins
    assert not bc.PatternMatcher(["*.md"]).matches("docs/README.md")  # "*" stays within a directory
    assert not pm.matches("keep.md")
    assert not bc.PatternMatcher(["docs", "!docs/README.md"]).matches("docs/README.md")


def test_read_dockerignore(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text(
        "\ufeff# comment\n\n  spaced  \n/abs/path\n!  ./x/../y\nsub//dir/\n #not a comment\n"
    )
    assert bc.read_dockerignore(str(tmp_path)) == ["spaced", "abs/path", "!y", "sub/dir", "#not a comment"]
    assert bc.read_dockerignore(str(tmp_path / "nowhere")) == []


def test_dockerfile_and_dockerignore_always_sent(tmp_path: Path) -> None:
    excludes = bc.trim_build_files(["*", "!a"], "sub/Dockerfile", from_stdin=False)
    assert excludes == ["*", "!a", "!.dockerignore", "!sub/Dockerfile"]
    assert bc.trim_build_files(["*"], "Dockerfile", from_stdin=True) == ["*", "!.dockerignore"]
    assert bc.trim_build_files(["x"], "Dockerfile", from_stdin=False) == ["x"]


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar]


def test_context_tar(tmp_path: Path) -> None:
    for rel in ("Dockerfile", "a", "skip/x", "skip/keep", "deep/er/f.tmp", "deep/er/g"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / ".dockerignore").write_text("skip\n!skip/keep\n**/*.tmp\n.dockerignore\n")
    excludes = bc.trim_build_files(bc.read_dockerignore(str(tmp_path)), "Dockerfile", False)
    out = io.BytesIO()
    bc.tar_directory(str(tmp_path), excludes, out)
    data = out.getvalue()
    assert _names(data) == [".dockerignore", "Dockerfile", "a", "deep", "deep/er", "deep/er/g", "skip/keep"]
    assert (
        len(data) % 512 == 0 and data[-1024:] == b"\0" * 1024 and len(data) < 10240
    )  # Go's tar: no record padding
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {(m.uid, m.gid, m.uname) for m in tar} == {(0, 0, "")}


def test_outside_dockerfile_added(tmp_path: Path) -> None:
    ctx = io.BytesIO()
    bc.dockerfile_only(b"FROM scratch\n", ctx)  # any context tar will do
    ctx.seek(0)
    out = io.BytesIO()
    name = bc.add_dockerfile(ctx, b"FROM busybox\n", out)
    assert name.startswith(".dockerfile.") and len(name) == len(".dockerfile.") + 20
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: member(tar, m).read() for m in tar if m.isfile()}
    assert members[name] == b"FROM busybox\n"
    assert members[".dockerignore"] == f".dockerignore\n{name}\n".encode()
    assert members["Dockerfile"] == b"FROM scratch\n"


def test_dockerfile_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dockerfile").write_text("FROM x\n")
    assert bc.dockerfile_rel_path(str(tmp_path), "") == "dockerfile"  # the lower-case name is accepted too
    monkeypatch.chdir(tmp_path.parent)
    assert bc.dockerfile_rel_path(str(tmp_path), f"{tmp_path.name}/dockerfile") == "dockerfile"
    with pytest.raises(
        bc.ContextError, match="unable to evaluate symlinks in Dockerfile path: lstat .*/nope: no such"
    ):
        bc.dockerfile_rel_path(str(tmp_path), "nope")
    assert bc.is_archive(b"\x1f\x8b\x08rest") and not bc.is_archive(b"FROM busybox\n")
