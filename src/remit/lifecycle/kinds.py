"""The lifecycle's groups of words: which request types add, update or remove, who makes them,
and which states an open request may be in."""

from __future__ import annotations

from remit.models.vocabulary import RequestType

T = RequestType
ADD_TYPES = frozenset({T.USER_ADD, T.ADMIN_ADD, T.SYSTEM_ADD})
REMOVE_TYPES = frozenset({T.USER_REMOVE, T.ADMIN_REMOVE, T.SYSTEM_REMOVE})
ADMIN_TYPES = frozenset({T.ADMIN_ADD, T.ADMIN_UPDATE, T.ADMIN_REMOVE})
SYSTEM_TYPES = frozenset({T.SYSTEM_ADD, T.SYSTEM_UPDATE, T.SYSTEM_REMOVE})
