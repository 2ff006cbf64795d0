"""sealed secrets: room in custom_extensions.secret for a sealed value

A sealed 256-character secret is 389 characters ("sealed:1 " + base64 of nonce, ciphertext and
tag; remit.sealing). The migration only widens the column: it cannot see the sealing key, which
lives in each process's data directory, so rows written in plaintext before are sealed by
``notify.sealed.seal_plaintext_secrets`` (docs/decisions/0019).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("custom_extensions", schema=None) as batch_op:
        batch_op.alter_column(
            "secret",
            existing_type=sa.String(length=256),
            type_=sa.String(length=512),
            existing_nullable=False,
        )


def downgrade() -> None:
    # A sealed value does not fit the old width on PostgreSQL: going back needs the secrets
    # reset (or the rows removed) first, which a downgrade cannot do for the operator.
    with op.batch_alter_table("custom_extensions", schema=None) as batch_op:
        batch_op.alter_column(
            "secret",
            existing_type=sa.String(length=512),
            type_=sa.String(length=256),
            existing_nullable=False,
        )
