"""The words remit's tables store: states, request types, delivery states, audit activities.

Each is a ``StrEnum`` whose values are the spellings stored and shown (Graph's, where Graph has
the word), so a member compares equal to the column's string and renders as it always did. Code
names a member (``RequestState.DELIVERING``), never the bare string: a typo is an
``AttributeError`` that mypy catches, not a row no query finds. The columns holding them are
``Word(Enum, length)``: a string column that hands back the member.

A request's or an assignment's ``status`` is not here: Graph defines it as free text beside the
state (``Delivering``, ``NotDelivered``, ``AssignmentEnded:<reason>``), and remit writes it only
beside the state it sets, in ``lifecycle`` (docs/decisions/0027).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=StrEnum)


class Word(TypeDecorator[E], Generic[E]):
    """A ``String(length)`` column of one vocabulary: stores the value, loads the member.

    To the schema (and to ``alembic check``) it is the plain string column it always was."""

    impl = String
    cache_ok = True

    def __init__(self, words: type[E], length: int) -> None:
        super().__init__(length)
        self.words = words
        # Loading a row looks its words up here: calling the enum costs several times more.
        self._members: dict[str, E] = {str(m.value): m for m in words}

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        # Any string binds: a $filter may compare the column with a word that is not one.
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        if value is None:
            return None
        member = self._members.get(value)
        return member if member is not None else self.words(value)


class RequestType(StrEnum):
    """accessPackageRequestType (graph-api §A.4), with remit's ``userExtend`` (spec §7)."""

    NOT_SPECIFIED = "notSpecified"
    USER_ADD = "userAdd"
    USER_UPDATE = "userUpdate"
    USER_EXTEND = "userExtend"
    USER_REMOVE = "userRemove"
    ADMIN_ADD = "adminAdd"
    ADMIN_UPDATE = "adminUpdate"
    ADMIN_REMOVE = "adminRemove"
    SYSTEM_ADD = "systemAdd"
    SYSTEM_UPDATE = "systemUpdate"
    SYSTEM_REMOVE = "systemRemove"
    ON_BEHALF_ADD = "onBehalfAdd"


class RequestState(StrEnum):
    """accessPackageRequestState: where an assignment or resource request is."""

    SUBMITTED = "submitted"
    PENDING_APPROVAL = "pendingApproval"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    PARTIALLY_DELIVERED = "partiallyDelivered"
    DELIVERY_FAILED = "deliveryFailed"
    DENIED = "denied"
    SCHEDULED = "scheduled"
    CANCELED = "canceled"


# A request not yet decided or delivered: it holds its open key, and may still create or change
# an assignment through its policy.
OPEN_REQUEST_STATES = (
    RequestState.SUBMITTED,
    RequestState.PENDING_APPROVAL,
    RequestState.SCHEDULED,
    RequestState.DELIVERING,
)
# The prefix of a Graph type name in ``@odata.type``, as stored and shown.
GRAPH = "#microsoft.graph."


class AssignmentState(StrEnum):
    """accessPackageAssignmentState: the delivery state of an assignment."""

    DELIVERING = "delivering"
    PARTIALLY_DELIVERED = "partiallyDelivered"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "deliveryFailed"
    EXPIRED = "expired"


class GrantState(StrEnum):
    """What a resource grant row last did in its target (``resource_grants.applied_state``)."""

    NONE = "none"
    GRANTED = "granted"
    REVOKED = "revoked"
    FAILED = "failed"


class StageStatus(StrEnum):
    """An approval stage's progress (Graph's approvalStage ``status``)."""

    NOT_STARTED = "NotStarted"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"


class ReviewResult(StrEnum):
    """An approval stage's outcome (Graph's approvalStage ``reviewResult``)."""

    NOT_REVIEWED = "NotReviewed"
    APPROVE = "Approve"
    DENY = "Deny"
    TIMED_OUT = "TimedOut"


class ApproverTier(StrEnum):
    """Whether a stage's approver was named as a primary or as an escalation approver."""

    PRIMARY = "primary"
    ESCALATION = "escalation"


class CatalogState(StrEnum):
    UNPUBLISHED = "unpublished"
    PUBLISHED = "published"


class OrganizationState(StrEnum):
    """connectedOrganizationState."""

    CONFIGURED = "configured"
    PROPOSED = "proposed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"


class Activity(StrEnum):
    """The audit trail's activity names (spec §8.1 where it names them; the rest in its style).

    They are stored in each event and hashed into the chain, so a value never changes once
    released: a new wording is a new member.
    """

    # Catalogs and their resources
    CREATE_CATALOG = "Create access package catalog"
    UPDATE_CATALOG = "Update access package catalog"
    DELETE_CATALOG = "Delete access package catalog"
    ADD_RESOURCE_TO_CATALOG = "Add resource to catalog"
    REMOVE_RESOURCE_FROM_CATALOG = "Remove resource from catalog"
    # Access packages
    CREATE_PACKAGE = "Create access package"
    UPDATE_PACKAGE = "Update access package"
    DELETE_PACKAGE = "Delete access package"
    ADD_RESOURCE_ROLE = "Add resource role to access package"
    REMOVE_RESOURCE_ROLE = "Remove resource role from access package"
    ADD_INCOMPATIBLE_PACKAGE = "Add incompatible access package"
    REMOVE_INCOMPATIBLE_PACKAGE = "Remove incompatible access package"
    ADD_INCOMPATIBLE_GROUP = "Add incompatible group"
    REMOVE_INCOMPATIBLE_GROUP = "Remove incompatible group"
    # Policies (Graph's own audit spells these as one word)
    CREATE_POLICY = "CreateEntitlementGrantPolicy"
    UPDATE_POLICY = "UpdateEntitlementGrantPolicy"
    DELETE_POLICY = "DeleteEntitlementGrantPolicy"
    # Requests and approvals
    USER_REQUESTS_ASSIGNMENT = "User requests access package assignment"
    USER_REQUESTS_EXTENSION = "User requests access package assignment extension"
    USER_REQUESTS_REMOVAL = "User requests removal of access package assignment"
    ADMIN_ASSIGNS = "Administrator directly assigns user to access package"
    ADMIN_UPDATES_ASSIGNMENT = "Administrator updates access package assignment"
    ADMIN_REMOVES_ASSIGNMENT = "Administrator removes access package assignment"
    SYSTEM_REQUESTS_ASSIGNMENT = "System requests access package assignment"
    SYSTEM_REMOVES_ASSIGNMENT = "System removes access package assignment"
    CREATE_REQUEST_APPROVAL = "Create request approval"
    ADD_APPROVER = "Add approver to request approval"
    FORWARD_APPROVAL = "Forward request approval to alternate approvers"
    APPROVE_REQUEST = "Approve access package assignment request"
    DENY_REQUEST = "Deny access package assignment request"
    REQUEST_TIMED_OUT = "Access package assignment request timed out (no approver action taken)"
    AUTO_APPROVE_REQUEST = "Auto approve access package assignment request"
    READY_TO_FULFILL = "Ready to fulfill access package assignment request"
    CANCEL_REQUEST = "Cancel access package assignment request"
    DELETE_REQUEST = "Delete access package assignment request"
    REPROCESS_REQUEST = "Reprocess access package assignment request"
    # Assignments and delivery
    FULFILL_ASSIGNMENT = "Fulfill access package assignment"
    DELIVERY_FAILED = "Access package assignment delivery failed"
    EXTEND_ASSIGNMENT = "Extend access package assignment"
    REMOVE_ASSIGNMENT = "Remove access package assignment"
    REPROCESS_ASSIGNMENT = "Reprocess access package assignment"
    # The directory
    ADD_USER = "Add user"
    UPDATE_USER = "Update user"
    DELETE_USER = "Delete user"
    ADD_GROUP = "Add group"
    ADD_MEMBER_TO_GROUP = "Add member to group"
    REMOVE_MEMBER_FROM_GROUP = "Remove member from group"
    ADD_OWNER_TO_GROUP = "Add owner to group"
    REMOVE_OWNER_FROM_GROUP = "Remove owner from group"
    ADD_APPLICATION = "Add application"
    ADD_OWNER_TO_APPLICATION = "Add owner to application"
    ADD_MEMBER_TO_ROLE = "Add member to role"
    REMOVE_MEMBER_FROM_ROLE = "Remove member from role"
    ADD_SITE = "Add site"
    ADD_SITE_ADMINISTRATOR = "Add site administrator"
    # Role assignments
    CREATE_ROLE_ASSIGNMENT = "Create role assignment"
    DELETE_ROLE_ASSIGNMENT = "Delete role assignment"
    # External users and connected organizations
    CREATE_ORGANIZATION = "Create connected organization"
    CREATE_PROPOSED_ORGANIZATION = "Create proposed connected organization"
    UPDATE_ORGANIZATION = "Update connected organization"
    DELETE_ORGANIZATION = "Delete connected organization"
    ADD_INTERNAL_SPONSOR = "Add internal sponsor to connected organization"
    REMOVE_INTERNAL_SPONSOR = "Remove internal sponsor from connected organization"
    ADD_EXTERNAL_SPONSOR = "Add external sponsor to connected organization"
    REMOVE_EXTERNAL_SPONSOR = "Remove external sponsor from connected organization"
    INVITE_EXTERNAL_USER = "Invite external user"
    MARK_EXTERNAL_USER_GOVERNED = "Mark external user as governed"
    BLOCK_EXTERNAL_USER = "Block external user"
    BLOCK_AND_SCHEDULE_DELETION = "Block external user and schedule deletion"
    UNBLOCK_EXTERNAL_USER = "Unblock external user"
    # Settings, extensions, jobs
    UPDATE_SETTINGS = "Update entitlement management settings"
    CREATE_EXTENSION = "Create custom extension"
    UPDATE_EXTENSION = "Update custom extension"
    DELETE_EXTENSION = "Delete custom extension"
    RETRY_JOB = "Retry job"
