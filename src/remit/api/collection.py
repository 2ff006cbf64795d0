"""Rendering a collection: $filter, $count, $orderby, $top, keyset paging and @odata.nextLink."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Query as Q
from fastapi import Request
from sqlalchemy import ColumnElement, Select
from sqlalchemy.orm import Session

from remit.api import odata
from remit.api.state import app_state
from remit.errors import Invalid


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


Renderer = Callable[[Session, list[Any]], list[dict[str, Any]]]


def collection(
    request: Request,
    session: Session,
    stmt: Select[Any],
    *,
    key: odata.Column,
    fields: dict[str, odata.F],
    q: QueryOptions,
    render: Renderer,
    context: str,
    expandable: Sequence[str] = (),
) -> dict[str, Any]:
    check_expand(q, expandable)
    if q.filter:
        stmt = stmt.where(odata.parse_filter(q.filter, fields))
    body: dict[str, Any] = {"@odata.context": context_url(request, context)}
    if q.count:
        body["@odata.count"] = session.execute(odata.count_of(stmt)).scalar_one()
    limit = app_state(request).settings.page_size
    size = min(q.top, limit) if q.top is not None else limit
    next_params: dict[str, str] | None = None
    if q.orderby:
        stmt = stmt.order_by(*_order(q.orderby, fields), key)
        offset = q.skip or 0
        rows = list(session.execute(stmt.offset(offset).limit(size + 1)).scalars())
        if len(rows) > size:
            next_params = {"$skip": str(offset + size)}
    else:
        if q.skiptoken:
            stmt = stmt.where(key > odata.decode_token(q.skiptoken, key))
        elif q.skip:
            stmt = stmt.order_by(key).offset(q.skip)
        rows = list(session.execute(stmt.order_by(key).limit(size + 1)).scalars())
        if len(rows) > size:
            next_params = {"$skiptoken": odata.encode_token(_key_of(rows[size - 1], key))}
    rows = rows[:size]
    body["value"] = [odata.apply_select(item, q.select) for item in render(session, rows)]
    if next_params is not None and size > 0:
        body["@odata.nextLink"] = _next_link(request, next_params)
    return body


def _key_of(row: Any, key: odata.Column) -> Any:
    return getattr(row, str(key.key))


def _order(text: str, fields: dict[str, odata.F]) -> list[ColumnElement[Any]]:
    order: list[ColumnElement[Any]] = []
    for part in text.split(","):
        name, _, direction = part.strip().partition(" ")
        found = fields.get(name)
        if found is None or direction.strip().lower() not in ("", "asc", "desc"):
            raise Invalid(f"$orderby cannot use {part.strip()!r}", target="$orderby")
        order.append(
            found.column.desc() if direction.strip().lower() == "desc" else found.column.asc()
        )
    return order


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
