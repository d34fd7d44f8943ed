"""Offset pagination for the admin API's lists: ``limit`` (1..1000, default 100) and ``offset``;
the answer is a ``Page`` and, when more follow, a ``Link: <...>; rel="next"`` header
(RFC 8288 §3) whose URL is the ``next`` member."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import Query, Request, Response
from pydantic import BaseModel

__all__ = ["MAX_LIMIT", "Page", "PageQuery", "page", "page_query"]

MAX_LIMIT: Final = 1000


class PageQuery(BaseModel):
    limit: int = 100
    offset: int = 0


def page_query(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="at most this many items")] = 100,
    offset: Annotated[int, Query(ge=0, description="skip this many items")] = 0,
) -> PageQuery:
    return PageQuery(limit=limit, offset=offset)


class Page(BaseModel):
    """One page of a list: its items, where it starts, and the URL of the next (or null)."""

    items: list[dict[str, Any]]
    limit: int
    offset: int
    next: str | None


def page(
    request: Request,
    response: Response,
    query: PageQuery,
    fetch: Callable[[int, int], list[dict[str, Any]]],
) -> Page:
    """``fetch(limit + 1, offset)``: one more than asked tells whether a next page exists."""
    items = fetch(query.limit + 1, query.offset)
    following = None
    if len(items) > query.limit:
        items = items[: query.limit]
        url = request.url.include_query_params(limit=query.limit, offset=query.offset + query.limit)
        following = f"{url.path}?{url.query}"
        response.headers["Link"] = f'<{following}>; rel="next"'
    return Page(items=items, limit=query.limit, offset=query.offset, next=following)
