"""Audit log reads (Graph ``auditLogs/directoryAudits``) with catalog-scoped visibility."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from remit.api import shapes
from remit.api.collection import QueryOptions, collection, entity, query_options
from remit.api.odata import F
from remit.api.state import identity, operation
from remit.audit.queries import get_event, visible_events
from remit.errors import NotFound
from remit.models.audit import AuditEvent
from remit.tokens import Identity

# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix="/v1.0/auditLogs", tags=["audit"], dependencies=[Depends(identity)])

FIELDS = {
    "id": F(AuditEvent.id),
    "category": F(AuditEvent.category),
    "activityDisplayName": F(AuditEvent.activity),
    "activityDateTime": F(AuditEvent.occurred_at),
    "operationType": F(AuditEvent.operation_type),
    "initiatedBy/user/id": F(AuditEvent.actor_id),
    "initiatedBy/user/userPrincipalName": F(AuditEvent.actor_name),
    "targetResourceId": F(AuditEvent.target_id),
    "catalogId": F(AuditEvent.catalog_id),
    # The user a lifecycle event is about (additionalDetails "subjectId"): a user's history.
    "subjectId": F(AuditEvent.subject_id),
}


@router.get("/directoryAudits")
def list_audits(
    request: Request,
    q: QueryOptions = Depends(query_options),
    ident: Identity = Depends(identity),
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        return collection(
            request,
            ctx.session,
            visible_events(ctx),
            key=AuditEvent.seq,
            fields=FIELDS,
            q=q,
            render=lambda _s, rows: [shapes.directory_audit(e) for e in rows],
            context="auditLogs/directoryAudits",
        )


@router.get("/directoryAudits/{event_id}")
def get_audit(
    request: Request, event_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    with operation(request, ident, write=False) as ctx:
        found = get_event(ctx, event_id)
        if found is None:
            raise NotFound(f"audit event {event_id} was not found")
        return entity(request, "auditLogs/directoryAudits", shapes.directory_audit(found))
