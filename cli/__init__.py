"""pydocker: the command-line client of pydockerd, speaking only the Docker Engine HTTP API."""

__version__ = "0.1.0"
# The newest Engine API this client knows; it uses min(this, the daemon's) on /vX.Y/ paths.
API_VERSION = "1.41"
