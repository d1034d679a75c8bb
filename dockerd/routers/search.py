"""`GET /images/search` (`docker search`): dockerd's checks of the term, limit and filters,
then a clear refusal.

dockerd asks the index server's v1 search API (index.docker.io, or the registry named in the
term). pydockerd reaches no index: the registries it pulls from (pyregistry, distribution)
have no search API, and it makes no connection off this machine. So a well-formed search is
answered 501 naming the index it would have asked, where dockerd without a route to the
index answers 500 with its connection error.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request

from dockerd.engine.errors import InvalidParameter, NotImplementedYet
from dockerd.routers.deps import DistributionBackend

FILTERS = {"is-automated", "is-official", "stars"}
DOCKER_INDEX = "docker.io"
DEFAULT_LIMIT = 25


def split_term(term: str, default_registry: str) -> tuple[str, str]:
    """(index, what is searched there), as dockerd's splitReposSearchTerm: the term's first
    component when that looks like a host, else the default registry and the whole term."""
    first, slash, rest = term.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return default_registry or DOCKER_INDEX, term


def _check_filters(raw: str) -> None:
    try:
        filters = json.loads(raw or "{}")
    except ValueError:
        raise InvalidParameter(f"invalid filters: {raw!r} is not JSON") from None
    if not isinstance(filters, dict):
        raise InvalidParameter("invalid filters: want a JSON object")
    for key, wanted in filters.items():
        if key not in FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
        values = [str(v) for v in (wanted if isinstance(wanted, (list, dict)) else [wanted])]
        if key == "stars":
            for value in values:
                if not value.lstrip("-").isdigit():
                    raise InvalidParameter(f"Invalid filter 'stars={value}'")
        elif values not in (["true"], ["false"]):
            raise InvalidParameter(f"Invalid filter '{key}=[{' '.join(values)}]'")


def _limit(raw: str) -> int:
    """dockerd's `limit`: 25 when absent, else an integer from 1 to 100."""
    if not raw:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None
    if not 1 <= limit <= 100:
        raise InvalidParameter(f"Limit {limit} is outside the range of [1, 100]")
    return limit


router = APIRouter()


@router.get("/images/search")
async def images_search(request: Request, distribution: DistributionBackend) -> None:
    q = request.query_params
    term = q.get("term") or ""
    _limit(q.get("limit") or "")
    _check_filters(q.get("filters") or "")
    if "://" in term:
        raise InvalidParameter('invalid repository name (ex: "registry.domain.tld/myrepos")')
    # Unqualified names go to daemon.json's default registry.
    index, remote = split_term(term, distribution.default_registry)
    raise NotImplementedYet(
        f"search is not supported: pydockerd reaches no index server to search {index} for {json.dumps(remote)}"
    )
