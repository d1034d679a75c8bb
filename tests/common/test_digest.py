"""common/digest.py: the one digest grammar, and computing and verifying digests."""

from __future__ import annotations

import hashlib

import pytest

from common import digest

SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_compute_and_verify() -> None:
    assert digest.compute(b"") == SHA256_EMPTY
    assert digest.compute(b"abc", "sha512") == "sha512:" + hashlib.sha512(b"abc").hexdigest()
    assert digest.verify(b"", SHA256_EMPTY)
    assert digest.verify(b"abc", digest.compute(b"abc", "sha512"))
    assert not digest.verify(b"abd", digest.compute(b"abc"))
    with pytest.raises(digest.DigestError):
        digest.verify(b"", "md5:d41d8cd98f00b204e9800998ecf8427e")


def test_streaming_copy_and_rollback() -> None:
    d = digest.Digester()
    d.update(b"he")
    saved = d.copy()
    d.update(b"llo")
    assert d.digest() == digest.compute(b"hello") and d.verify(digest.compute(b"hello"))
    saved.update(b"y")
    assert saved.digest() == digest.compute(b"hey")
    assert digest.Digester.for_digest(digest.compute(b"", "sha512")).algorithm == "sha512"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sha256:" + "A" * 64, "invalid digest"),  # upper case hex
        ("sha256:" + "a" * 63, "invalid digest"),
        ("sha256:../../etc/passwd", "invalid digest"),
        ("sha256", "invalid digest"),
        (":abc", "invalid digest"),
        ("sha256+:abc", "invalid digest"),
        (None, "invalid digest"),
        ("sha512:" + "a" * 128, "unsupported digest algorithm"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm"),
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", "unsupported digest algorithm"),
    ],
)
def test_refused_digests_say_why(value: object, message: str) -> None:
    with pytest.raises(digest.DigestError, match=message) as caught:
        digest.parse(value)
    assert caught.value.unsupported == message.startswith("unsupported")
    assert not digest.is_digest(value)


def test_each_caller_says_which_algorithms_it_verifies() -> None:
    sha512 = "sha512:" + "b" * 128
    assert digest.parse(SHA256_EMPTY) == ("sha256", SHA256_EMPTY[7:])
    assert digest.is_digest(sha512, ("sha256", "sha512"))
    assert not digest.is_digest(sha512)
    assert digest.is_well_formed("multihash+base58:QmRZ") and not digest.is_well_formed("a:b/c")


def test_the_layers_use_it() -> None:
    # pycontainerd's store, its client and pyregistry keep their own error kinds and wording over it.
    from containerd.client.media import validate_digest as client_validate
    from containerd.content.digest import validate_digest as store_validate
    from containerd.errors import InvalidArgument
    from registry.refs import valid_digest

    assert store_validate(SHA256_EMPTY) == client_validate(SHA256_EMPTY) == SHA256_EMPTY
    with pytest.raises(InvalidArgument, match=r"unsupported digest algorithm in 'sha512:b+' \(only sha256\)"):
        store_validate("sha512:" + "b" * 128)
    with pytest.raises(InvalidArgument, match="is not a sha256 digest"):
        client_validate("sha256:nothex")
    assert valid_digest("sha512:" + "b" * 128) and not valid_digest("sha384:" + "b" * 96)
