"""What every route does around its operation, written once: a route names its path, its
parameters and what it calls; ``Call`` runs that in one unit of work as the caller and answers
as Graph does (a page, an entity, or an empty 204/202).

A route takes one of three dependencies, by what it answers:

- ``Paged``: a collection, with the OData query options of a list (``$filter``, ``$top`` ...);
- ``Single``: one object, with ``$select`` and ``$expand``;
- ``Plain``: anything else (writes, and reads that take no query option).

Each resolves the caller's identity as the routers' own dependency does (once per request, so a
bad token is still a 401 before any 400 about the query or the body). They are ``async``: they
do no I/O, and a plain ``def`` would cost each request a hop to the threadpool.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response

from remit.api.collection import (
    QueryOptions,
    Render,
    check_expand,
    entity,
    listed,
    query_options,
    single_options,
)
from remit.api.state import identity, operation
from remit.context import Ctx
from remit.listing import ListOptions, Page
from remit.tokens import Identity

T = TypeVar("T")
E = TypeVar("E", bound=Callable[..., Any])


def _no_options() -> QueryOptions:
    return QueryOptions(None, None, {}, None, None, None, False, None)


@dataclass(frozen=True)
class Call:
    """One API call: the request, the identity its token proved, and its query options."""

    request: Request
    ident: Identity
    q: QueryOptions = field(default_factory=_no_options)

    @contextmanager
    def unit(self, *, write: bool) -> Iterator[Ctx]:
        """One unit of work as the caller (``state.operation``)."""
        with operation(self.request, self.ident, write=write) as ctx:
            yield ctx

    def entity(self, context: str, item: dict[str, Any]) -> dict[str, Any]:
        """``item`` as Graph's ``$entity`` of ``context``, with the call's ``$select``."""
        return entity(self.request, context, item, self.q)

    def page(
        self,
        query: Callable[[Ctx, ListOptions], Page[T]],
        render: Render[T],
        *,
        context: str,
        expandable: Sequence[str] = (),
        parent: Callable[[Ctx], object] | None = None,
    ) -> dict[str, Any]:
        """One page of a collection (``collection.listed``)."""
        return listed(
            self.request,
            self.ident,
            self.q,
            query,
            render,
            context=context,
            expandable=expandable,
            parent=parent,
        )

    def one(
        self,
        context: str,
        find: Callable[[Ctx], T],
        render: Render[T],
        *,
        expandable: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """One object: ``find`` it, then ``render`` it as a page of one, as Graph's ``$entity``.

        ``expandable`` is checked after the read (an object the caller may not see is a 404
        before any 400); None leaves ``$expand`` unchecked, as such routes always have."""
        with self.unit(write=False) as ctx:
            found = find(ctx)
            if expandable is not None:
                check_expand(self.q, expandable)
            return self.entity(context, render(ctx, [found])[0])

    def done(self, change: Callable[[Ctx], object], *, status: int = 204) -> Response:
        """``change`` in one write unit of work, answered with no content (204, or 202)."""
        with self.unit(write=True) as ctx:
            change(ctx)
        return Response(status_code=status)


async def _plain(request: Request, ident: Identity = Depends(identity)) -> Call:
    return Call(request, ident)


def _with(options: Callable[..., QueryOptions]) -> Callable[..., Awaitable[Call]]:
    async def dependency(
        request: Request,
        q: QueryOptions = Depends(options),
        ident: Identity = Depends(identity),
    ) -> Call:
        return Call(request, ident, q)

    return dependency


Plain = Annotated[Call, Depends(_plain)]
Single = Annotated[Call, Depends(_with(single_options))]
Paged = Annotated[Call, Depends(_with(query_options))]


def parameters(path: str) -> list[str]:
    """The names of a route path's parameters, in order."""
    return re.findall(r"\{(\w+)\}", path)


def with_path(endpoint: E, *names: str) -> E:
    """``endpoint`` as FastAPI will read it: beside its own parameters, ``names`` are string
    path parameters, passed by keyword (the endpoint takes them as ``**ids``).

    So one endpoint of a route factory serves paths whose parameters have different names
    (``/groups/{group_id}/owners``, ``/sites/{site_id}/administrators``), and the OpenAPI
    document still names each. Apply it before the route decorator, which reads the signature.
    """
    own = [p for p in inspect.signature(endpoint).parameters.values() if p.kind != p.VAR_KEYWORD]
    path = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=str) for n in names]
    endpoint.__signature__ = inspect.signature(endpoint).replace(  # type: ignore[attr-defined]
        parameters=[*own, *path]
    )
    return endpoint


def shaped(shape: Callable[[T], dict[str, Any]]) -> Render[T]:
    """The render of rows that need nothing but their own shape."""
    return lambda _ctx, rows: [shape(row) for row in rows]
