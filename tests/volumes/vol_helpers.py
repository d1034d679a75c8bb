"""Shared settings of the volume tests."""

from __future__ import annotations

from dockerd.volumes.pluginclient import Timeouts

# what the service's publish callback was given: (type, action, actor id, attributes)
PublishedEvents = list[tuple[str, str, str, dict[str, str]]]

# short deadlines so a plugin that never answers fails a test in seconds, not minutes
FAST = Timeouts(short=2.0, long=3.0, connect_retry=2.5)
