"""stage approvers: why each approver was named

``stage_approvers.named_as`` records, when a stage starts, the subjectSet kinds that resolved to
the principal ("requestorManager:2", "groupMembers", "fallback:singleUser", ...), so that
``remit explain --request`` can say why someone may approve without resolving the policy again
(a manager may have changed since). Rows written before stay NULL: explain then says only that
the principal was named (docs/decisions/0026).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stage_approvers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("named_as", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stage_approvers", schema=None) as batch_op:
        batch_op.drop_column("named_as")
