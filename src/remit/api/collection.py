"""Graph collections: the query options a GET may carry, and the envelope of a page
(``@odata.context``, ``@odata.count``, ``value``, ``@odata.nextLink``); the page itself comes from
the domain's queries (``remit.listing``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlencode

from fastapi import Query as Q
from fastapi import Request

from remit.api import odata
from remit.api.state import app_state, operation
from remit.context import Ctx
from remit.errors import Invalid
from remit.listing import ListOptions, Page
from remit.tokens import Identity

T = TypeVar("T")
R = TypeVar("R")


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Row = TypeVar("Row", bound=_Identified)
F = TypeVar("F")
# Graph JSON for a page of rows (a render may read more, for ``$expand``).
Render = Callable[[Ctx, list[T]], list[dict[str, Any]]]


@dataclass
class QueryOptions:
    """The OData system query options a Graph client may send on a GET."""

    filter: str | None
    select: list[str] | None
    expand: dict[str, dict[str, str]]
    top: int | None
    skip: int | None
    skiptoken: str | None
    count: bool
    orderby: str | None


def query_options(
    filter_: str | None = Q(None, alias="$filter"),
    select_: str | None = Q(None, alias="$select"),
    expand: str | None = Q(None, alias="$expand"),
    top: str | None = Q(None, alias="$top"),
    skip: str | None = Q(None, alias="$skip"),
    skiptoken: str | None = Q(None, alias="$skiptoken"),
    count: str | None = Q(None, alias="$count"),
    orderby: str | None = Q(None, alias="$orderby"),
) -> QueryOptions:
    return QueryOptions(
        filter=filter_ or None,
        select=odata.parse_select(select_),
        expand=odata.parse_expand(expand),
        top=odata.parse_top(top),
        skip=odata.parse_top(skip, "$skip"),
        skiptoken=skiptoken or None,
        count=odata.parse_bool(count, "$count"),
        orderby=orderby or None,
    )


def single_options(
    select_: str | None = Q(None, alias="$select"),
    expand: str | None = Q(None, alias="$expand"),
) -> QueryOptions:
    return QueryOptions(
        None, odata.parse_select(select_), odata.parse_expand(expand), None, None, None, False, None
    )


def base_url(request: Request) -> str:
    configured = app_state(request).settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/") + "/v1.0"


def context_url(request: Request, fragment: str) -> str:
    return f"{base_url(request)}/$metadata#{fragment}"


def check_expand(q: QueryOptions, allowed: Sequence[str]) -> None:
    unknown = set(q.expand) - set(allowed)
    if unknown:
        raise Invalid(
            f"$expand supports {', '.join(allowed) or 'nothing'} here, "
            f"not {', '.join(sorted(unknown))}",
            target="$expand",
        )


def list_options(request: Request, q: QueryOptions) -> ListOptions:
    return ListOptions(
        page_size=app_state(request).settings.page_size,
        filter=q.filter,
        orderby=q.orderby,
        top=q.top,
        skip=q.skip,
        skiptoken=q.skiptoken,
        count=q.count,
    )


def page_body(
    request: Request,
    q: QueryOptions,
    page: Page[Any],
    items: list[dict[str, Any]],
    context: str,
) -> dict[str, Any]:
    """A Graph collection: ``@odata.context``, ``@odata.count``, ``value``, ``@odata.nextLink``."""
    body: dict[str, Any] = {"@odata.context": context_url(request, context)}
    if page.count is not None:
        body["@odata.count"] = page.count
    body["value"] = [odata.apply_select(item, q.select) for item in items]
    if page.next_skip is not None:
        body["@odata.nextLink"] = _next_link(request, {"$skip": str(page.next_skip)})
    elif page.next_skiptoken is not None:
        body["@odata.nextLink"] = _next_link(request, {"$skiptoken": page.next_skiptoken})
    return body


def listed(
    request: Request,
    ident: Identity,
    q: QueryOptions,
    query: Callable[[Ctx, ListOptions], Page[T]],
    render: Callable[[Ctx, list[T]], list[dict[str, Any]]],
    *,
    context: str,
    expandable: Sequence[str] = (),
    parent: Callable[[Ctx], object] | None = None,
) -> dict[str, Any]:
    """The list ceremony of every collection route: one read unit of work as ``ident``, the
    domain's ``query`` for one page, ``render`` (which may call more queries, for ``$expand``),
    and the Graph envelope.

    The faults of a request are reported in the order routes had when they built their own
    selects: authorization first (a caller who may not read the list is refused as such), then
    ``$expand`` (checked by ``listing.page`` before any SQL of its own), then ``$filter``,
    ``$orderby`` and the continuation. For a collection that hangs off one object, ``parent``
    reads that object first: one the caller may not see is a 404 before any 400."""
    checked: list[bool] = []

    def check() -> None:
        checked.append(True)
        check_expand(q, expandable)

    options = replace(list_options(request, q), check=check)
    with operation(request, ident, write=False) as ctx:
        if parent is not None:
            parent(ctx)
            check()
        page = query(ctx, options)
        if not checked:  # a query that pages by itself
            check()
        return page_body(request, q, page, render(ctx, page.items), context)


def _next_link(request: Request, replace: dict[str, str]) -> str:
    params = [
        (k, v) for k, v in request.query_params.multi_items() if k not in ("$skiptoken", "$skip")
    ]
    params.extend(replace.items())
    return f"{base_url(request).removesuffix('/v1.0')}{request.url.path}?{urlencode(params)}"


def entity(
    request: Request, context: str, item: dict[str, Any], q: QueryOptions | None = None
) -> dict[str, Any]:
    body = {"@odata.context": context_url(request, context + "/$entity")}
    body.update(odata.apply_select(item, q.select) if q else item)
    return body


@dataclass(frozen=True)
class Navigation(Generic[R, F]):
    """A navigation property that ``$expand`` may name on a page of ``R`` rows: ``load`` reads
    it for the whole page at once (no N+1), ``value`` picks one row's from what was read."""

    load: Callable[[Ctx, list[R]], F]
    value: Callable[[R, F], Any]

    @staticmethod
    def many(
        load: Callable[[Ctx, list[Row]], Mapping[str, Sequence[T]]],
        shape: Callable[[T], dict[str, Any]],
    ) -> Navigation[Row, Mapping[str, Sequence[T]]]:
        """A collection navigation: ``load`` gives each row's objects by the row's id."""
        return Navigation(load, lambda row, found: [shape(x) for x in found[row.id]])


def expanded(
    ctx: Ctx,
    rows: list[R],
    items: list[dict[str, Any]],
    expand: Collection[str],
    navigations: Mapping[str, Navigation[R, Any]],
) -> list[dict[str, Any]]:
    """``items`` (the shapes of ``rows``, in step), each with the ``navigations`` that
    ``expand`` names, in the order of ``navigations``; an empty page reads nothing."""
    for name, navigation in navigations.items():
        if name in expand and rows:
            found = navigation.load(ctx, rows)
            for item, row in zip(items, rows, strict=True):
                item[name] = navigation.value(row, found)
    return items


def rendering(
    shape: Callable[[R], dict[str, Any]], navigations: Mapping[str, Navigation[R, Any]]
) -> Callable[[Collection[str]], Render[R]]:
    """The render, for a given ``$expand``, of a page of ``R``: each row's ``shape``, with the
    ``navigations`` the expand names."""

    def for_expand(expand: Collection[str]) -> Render[R]:
        return lambda ctx, rows: expanded(ctx, rows, [shape(r) for r in rows], expand, navigations)

    return for_expand
