"""Content digests as the OCI image spec writes them, "sha256:<64 lowercase hex>": one grammar, one
way to compute and to verify, for pycontainerd's content store and client, pydockerd and pyregistry.

A digest is `algorithm:encoded`, the algorithm `[a-z0-9]+([+._-][a-z0-9]+)*`, the encoded part
`[a-zA-Z0-9=_-]+`. Only the algorithms in ALGORITHMS can be verified, and each caller says which
it accepts (containerd's store: sha256 only; a registry: sha256 and sha512); a verifiable digest's
encoded part must be its exact hex length, lowercase, which is also what keeps a digest from ever
being a path traversal where it names a file.
"""

from __future__ import annotations

import hashlib

SHA256 = "sha256"
ALGORITHMS = {"sha256": 64, "sha512": 128}  # algorithm -> length of its hex encoding
_HEX = frozenset("0123456789abcdef")
_ALG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALG_SEPARATORS = frozenset("+._-")
_ENCODED_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=_-")


class DigestError(ValueError):
    """Not a digest that can be verified here; `unsupported` when it is well formed but of an
    algorithm the caller does not accept."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def _well_formed(value: str) -> bool:
    algorithm, sep, encoded = value.partition(":")
    if not sep or not algorithm or not encoded or not _ENCODED_CHARS.issuperset(encoded):
        return False
    component = False  # inside a run of [a-z0-9]
    for ch in algorithm:
        if ch in _ALG_CHARS:
            component = True
        elif ch in _ALG_SEPARATORS and component:
            component = False
        else:
            return False
    return component


def parse(value: object, algorithms: tuple[str, ...] = (SHA256,)) -> tuple[str, str]:
    """(algorithm, hex) of VALUE, a verifiable digest of one of ALGORITHMS; DigestError otherwise."""
    if not isinstance(value, str) or not _well_formed(value):
        raise DigestError(f"invalid digest {value!r}")
    algorithm, _, encoded = value.partition(":")
    if algorithm not in algorithms or algorithm not in ALGORITHMS:
        raise DigestError(
            f"unsupported digest algorithm in {value!r} (only {', '.join(algorithms)})", unsupported=True
        )
    if len(encoded) != ALGORITHMS[algorithm] or not _HEX.issuperset(encoded):
        raise DigestError(f"invalid digest {value!r}")
    return algorithm, encoded


def is_digest(value: object, algorithms: tuple[str, ...] = (SHA256,)) -> bool:
    try:
        parse(value, algorithms)
    except DigestError:
        return False
    return True


def is_well_formed(value: object) -> bool:
    """Does VALUE follow the grammar (whatever its algorithm, verifiable or not)?"""
    return isinstance(value, str) and _well_formed(value)


def compute(data: bytes, algorithm: str = SHA256) -> str:
    """The digest of DATA."""
    digester = Digester(algorithm)
    digester.update(data)
    return digester.digest()


def verify(data: bytes, expected: str) -> bool:
    """Is EXPECTED (any verifiable algorithm) the digest of DATA?"""
    algorithm, _ = parse(expected, tuple(ALGORITHMS))
    return compute(data, algorithm) == expected


class Digester:
    """A digest computed over a stream, chunk by chunk (hashlib releases the GIL on large chunks)."""

    __slots__ = ("algorithm", "_hash")

    def __init__(self, algorithm: str = SHA256) -> None:
        if algorithm not in ALGORITHMS:
            raise DigestError(f"unsupported digest algorithm {algorithm!r}", unsupported=True)
        self.algorithm = algorithm
        self._hash = hashlib.sha256() if algorithm == SHA256 else hashlib.new(algorithm)

    @classmethod
    def for_digest(cls, expected: str) -> Digester:
        """A digester of EXPECTED's algorithm, to verify a stream against it."""
        return cls(parse(expected, tuple(ALGORITHMS))[0])

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def copy(self) -> Digester:
        """An independent digester in the same state (to roll back to)."""
        other = Digester.__new__(Digester)
        other.algorithm = self.algorithm
        other._hash = self._hash.copy()
        return other

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"

    def verify(self, expected: str) -> bool:
        return self.digest() == expected
