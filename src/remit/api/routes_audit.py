"""Audit log reads (Graph ``auditLogs/directoryAudits``) with catalog-scoped visibility."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from remit.api import shapes
from remit.api.calls import Paged, Plain, shaped
from remit.api.state import identity
from remit.audit import queries as audit

# The token is checked before query options and body fields: a bad token is a 401 first.
router = APIRouter(prefix="/v1.0/auditLogs", tags=["audit"], dependencies=[Depends(identity)])
AUDITS = "auditLogs/directoryAudits"


@router.get("/directoryAudits")
def list_audits(call: Paged) -> dict[str, Any]:
    return call.page(audit.events, shaped(shapes.directory_audit), context=AUDITS)


@router.get("/directoryAudits/{event_id}")
def get_audit(event_id: str, call: Plain) -> dict[str, Any]:
    return call.one(AUDITS, lambda ctx: audit.event(ctx, event_id), shaped(shapes.directory_audit))
