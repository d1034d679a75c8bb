"""The backend of the distribution routes (POST /images/create?fromImage=, POST
/images/{name}/push, POST /auth): registries as daemon.json configures them (mirrors,
insecure registries, the default registry), pulls and pushes as progress streams, logins."""

from __future__ import annotations

from containerd.client import Client
from containerd.client.errors import InvalidArgument
from containerd.client.names import parse_reference
from dockerd.engine.distribution.progress import Streamed
from dockerd.engine.distribution.pull import Pull
from dockerd.engine.distribution.push import Push
from dockerd.engine.distribution.registry_client import (
    AuthConfig,
    RegistryConfig,
    RegistryError,
    Session,
    Unauthorized,
    transport_text,
)
from dockerd.engine.errors import EngineError, InvalidParameter
from dockerd.engine.events import Publish


class Distribution:
    def __init__(self, client: Client, config: RegistryConfig, publish: Publish) -> None:
        self.client = client
        self.config = config
        self.publish = publish

    @property
    def default_registry(self) -> str:
        """Where unqualified names go (daemon.json `default-registry`)."""
        return self.config.default_registry

    def pull(self, from_image: str, tag: str, auth: AuthConfig) -> Pull:
        """A pull with its reference resolved at the registry; errors so far are HTTP errors."""
        pull = Pull(self.client, self.config, from_image, tag, auth)
        pull.prepare()
        return pull

    def push(self, name: str, tag: str, auth: AuthConfig) -> Push:
        """A push of the local images of NAME (or of NAME:TAG), its registry reached."""
        push = Push(self.client, self.config, name, tag, auth)
        push.prepare()
        return push

    def announce(self, job: Streamed, action: str) -> None:
        """The image events of a pull or push whose stream has ended well ("pull", "push")."""
        for id_, name in job.events:
            self.publish("image", action, id_, {"name": name})

    def login(self, auth: AuthConfig) -> dict[str, str]:
        return login(self.config, auth)


def login(config: RegistryConfig, auth: AuthConfig) -> dict[str, str]:
    """POST /auth: check the credentials against the registry named by serveraddress."""
    server = auth.serveraddress or "https://index.docker.io/v1/"
    host = server.split("://", 1)[-1].split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        host = "docker.io"
    try:
        ref = parse_reference(f"{host}/login/probe" if host != "docker.io" else "login/probe")
    except InvalidArgument as exc:
        raise InvalidParameter(str(exc)) from None
    import httpx  # not held by an idle daemon (registry_client)

    errors: list[EngineError] = []
    for base in config.endpoints(ref.domain, push=True):
        session = Session(base, ref.path, "pull", auth)
        try:
            session.login()
            return {"Status": "Login Succeeded", "IdentityToken": ""}
        except httpx.HTTPError as exc:
            errors.append(RegistryError(f'Get "{base}/v2/": {transport_text(exc, base)}', 500))
        except Unauthorized:
            raise
        except EngineError as exc:
            errors.append(exc)
        finally:
            session.close()
    raise errors[-1] if errors else InvalidParameter(f"no endpoint for {server}")
