"""containerd's filter syntax: parsing, matching, errors."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from containerd import filters
from containerd.errors import InvalidArgument

RECORD = {
    "name": "docker.io/library/busybox:latest",
    "target.mediatype": "application/vnd.oci.image.index.v1+json",
    "labels.com.example/owner": "alice",
    "labels.env": "prod",
    "labels.with space": "a b",
    "labels.empty-ish": "-",
}


def adaptor(path: Sequence[str]) -> str | None:
    return RECORD.get(".".join(path))


def matches(*filter_strings: str) -> bool:
    return filters.parse_all(filter_strings).match(adaptor)


def test_empty_filters_match_everything() -> None:
    assert matches()
    assert matches("")
    assert filters.ALWAYS.match(adaptor)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name==docker.io/library/busybox:latest", True),
        ("name==busybox", False),
        ("name!=busybox", True),
        ("name!=docker.io/library/busybox:latest", False),
        ("name~=busybox", True),  # a search, not a full match
        ("name~=^busybox", False),
        (r"name~=/^docker\\.io/", True),  # /.../ quoting; a backslash is doubled (Go escapes)
        ("name~=|busy(box)?:latest$|", True),
        ("name@=library", True),
        ("name@=alpine", False),
        ("labels.env", True),
        ("labels.missing", False),
        ("labels.env==prod", True),
        ('labels.env=="prod"', True),
        ('labels."com.example/owner"==alice', True),
        ('labels."with space"=="a b"', True),
        ("labels.empty-ish==-", True),
        ("target.mediatype~=index", True),
        ("  name  ==  docker.io/library/busybox:latest  ", True),
    ],
)
def test_single_selectors(text: str, expected: bool) -> None:
    assert matches(text) is expected


def test_comma_is_and_list_is_or() -> None:
    assert matches("labels.env==prod,name~=busybox")
    assert not matches("labels.env==prod,name~=alpine")
    assert matches("labels.env==dev", "name~=busybox")
    assert not matches("labels.env==dev", "name~=alpine")


def test_absent_fields() -> None:
    assert not matches("labels.nope==x")
    assert matches("labels.nope!=x")  # containerd compares an absent field as ""
    assert matches("labels.nope~=.*")
    assert not matches("labels.nope~=.")
    assert not matches("nosuchfield")


def test_dotted_unquoted_path_joins_into_one_key() -> None:
    record = {"labels": {"a.b": "c"}}

    def adapt(path: Sequence[str]) -> str | None:
        if path and path[0] == "labels":
            return filters.map_field(record["labels"], path[1:])
        return None

    assert filters.parse("labels.a.b==c").match(adapt)
    assert filters.parse('labels."a.b"==c').match(adapt)
    assert not filters.parse("labels.a==c").match(adapt)


def test_quoted_escapes() -> None:
    sel = filters.parse(r'labels."tab\there"=="q\"uote\x41\u00e9\101"').selectors[0]
    assert sel.fieldpath == ("labels", "tab\there")
    assert sel.value == 'q"uoteAéA'
    slash = filters.parse(r"name~=/a\/b/").selectors[0]
    assert slash.value == "a/b"


@pytest.mark.parametrize(
    "text",
    [
        "labels.",
        ".name",
        "name=foo",
        "name===foo",
        "name==",
        "name==foo,",
        ",name==foo",
        "name==foo,,labels.x",
        '"unterminated',
        'labels."x==y',
        "name~=(",
        r'name=="\d"',
        "name==foo bar",
        "name foo",
        "na$me==x",
        "labels.com.example/owner==alice",  # '/' needs a quoted field
    ],
)
def test_syntax_errors_are_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid filter"):
        filters.parse_all([text])


def test_value_may_hold_dots_equals_and_colons() -> None:
    record = {"digest": "sha256:" + "a" * 64, "size": "1.5=x"}

    def adapt(path: Sequence[str]) -> str | None:
        return record.get(".".join(path))

    assert filters.parse("digest==sha256:" + "a" * 64).match(adapt)
    assert filters.parse("size==1.5=x").match(adapt)
