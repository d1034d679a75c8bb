"""The engine's error kinds, each with the HTTP status Docker answers with."""


class EngineError(Exception):
    status = 500


class InvalidParameter(EngineError):
    status = 400


class NotFound(EngineError):
    status = 404


class Conflict(EngineError):
    status = 409


class NotModified(EngineError):
    status = 304


class NotImplementedYet(EngineError):
    status = 501


class Unavailable(EngineError):
    status = 503


def no_such_container(ref: str) -> NotFound:
    return NotFound(f"No such container: {ref}")


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")
