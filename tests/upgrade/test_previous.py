"""The upgrade test names the previous release by tag or commit and resolves it with git; without
the history it fails, saying why, rather than skip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.upgrade import previous


def test_resolves_the_tag_or_else_the_commit() -> None:
    name, commit = previous.resolve()
    assert name in (previous.PREVIOUS_TAG, previous.PREVIOUS_COMMIT)
    tag = subprocess.run(
        ["git", "-C", str(previous.REPO), "rev-parse", "--verify", "--quiet", f"{previous.PREVIOUS_TAG}^{{commit}}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert name == (previous.PREVIOUS_TAG if tag.returncode == 0 else previous.PREVIOUS_COMMIT)
    assert len(commit) == 40


def test_without_git_history_the_test_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("a copy of the project without .git\n")
    with pytest.raises(pytest.fail.Exception, match="is not a git repository"):
        previous.resolve(tmp_path)


def test_without_the_release_the_test_fails_clearly(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    with pytest.raises(
        pytest.fail.Exception, match=f"neither the tag {previous.PREVIOUS_TAG} nor the commit"
    ):
        previous.resolve(tmp_path)
