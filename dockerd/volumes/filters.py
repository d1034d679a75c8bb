"""Docker's filter arguments (moby's api/types/filters.Args), as the volume routes use them.

A filter is `key -> set of values`; the wire form is JSON, either `{"k": ["v1", "v2"]}` or the
older `{"k": {"v1": true}}`. The matching rules are moby's, including their quirks:
`match` is an exact match or an unanchored regular expression search; `match_kv_list`
needs every `key` / `key=value` to hold and is false for an object without labels.
Nothing here is volume-specific, so the image and container filters can share it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockerd.engine.errors import InvalidParameter


@dataclass(frozen=True)
class Filters:
    fields: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | Mapping[str, Any] | None) -> Filters:
        """From the query parameter's JSON text (or its decoded form); empty or None is no filter."""
        if raw is None or raw == "":
            return cls()
        decoded: Any = raw
        if isinstance(raw, str):
            try:
                decoded = json.loads(raw)
            except ValueError as exc:
                raise InvalidParameter(f"invalid filter: {exc}") from exc
        if not isinstance(decoded, Mapping):
            raise InvalidParameter("invalid filter: the filters must be a JSON object")
        out: dict[str, frozenset[str]] = {}
        for key, values in decoded.items():
            if isinstance(values, Mapping):
                vals = [str(v) for v, on in values.items() if on]
            elif isinstance(values, list):
                vals = [str(v) for v in values]
            else:
                raise InvalidParameter(f"invalid filter: the values of '{key}' must be a list")
            out[str(key)] = frozenset(vals)
        return cls(out)

    @classmethod
    def of(cls, **values: Iterable[str]) -> Filters:
        """Built in code: Filters.of(label=["a=b"], dangling=["true"]); `label_not` stands for `label!`."""
        return cls({k.replace("_not", "!"): frozenset(v) for k, v in values.items()})

    def validate(self, accepted: Iterable[str]) -> None:
        allowed = set(accepted)
        for key in self.fields:
            if key not in allowed:
                raise InvalidParameter(f"Invalid filter '{key}'")

    def contains(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str) -> list[str]:
        return sorted(self.fields.get(key, ()))

    def exact_match(self, key: str, source: str) -> bool:
        values = self.fields.get(key)
        return not values or source in values

    def match(self, key: str, source: str) -> bool:
        """Exact, or any value as an unanchored regular expression (an invalid one never matches)."""
        if self.exact_match(key, source):
            return True
        for pattern in self.fields.get(key, ()):
            try:
                if re.search(pattern, source):
                    return True
            except re.error:
                continue
        return False

    def match_kv_list(self, key: str, labels: Mapping[str, str] | None) -> bool:
        values = self.fields.get(key)
        if not values:
            return True
        if not labels:
            return False
        for spec in values:
            name, eq, value = spec.partition("=")
            if name not in labels or (eq and labels[name] != value):
                return False
        return True

    def bool_value(self, key: str) -> bool | None:
        """The filter's boolean (true/1 or false/0), None when absent; anything else is refused as moby does."""
        if key not in self.fields:
            return None
        if self.exact_match(key, "true") or self.exact_match(key, "1"):
            return True
        if self.exact_match(key, "false") or self.exact_match(key, "0"):
            return False
        raise InvalidParameter(f"Invalid filter '{key}=[{' '.join(self.get(key))}]'")
