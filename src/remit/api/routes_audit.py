"""Audit log reads (Graph ``auditLogs/directoryAudits``) with catalog-scoped visibility."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from remit.api import shapes
from remit.api.collection import QueryOptions, entity, listed, query_options
from remit.api.state import identity, operation
from remit.audit import queries as audit
from remit.tokens import Identity

# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix="/v1.0/auditLogs", tags=["audit"], dependencies=[Depends(identity)])


@router.get("/directoryAudits")
def list_audits(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    return listed(
        request,
        ident,
        q,
        audit.events,
        lambda _ctx, rows: [shapes.directory_audit(e) for e in rows],
        context="auditLogs/directoryAudits",
    )


@router.get("/directoryAudits/{event_id}")
def get_audit(
    request: Request, event_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = audit.event(ctx, event_id)
        return entity(request, "auditLogs/directoryAudits", shapes.directory_audit(found))
