"""delivery targets: targets as rows, routes per resource, grant rows' target and claim

A target is a row naming its connector kind (``builtin`` for remit's own directory) and its
non-secret settings; a route sends one resource's roles to a target; a resource without one is
delivered by the builtin target, seeded here with its fixed id. Each grant row keeps the target
it was resolved to (existing rows: the builtin one, which delivered them all) and, while a
remote call is in flight, its claim: token, generation and lease (docs/decisions/0025).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 18:33:36.722415
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import remit.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# models.delivery.BUILTIN_TARGET_ID, written out: a migration does not follow later code.
BUILTIN_TARGET_ID = "00000000-0000-0000-0000-000000000001"


def upgrade() -> None:
    targets = op.create_table(
        "delivery_targets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", remit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_targets")),
    )
    # Before the grant rows name it (SQLite checks the foreign key as it copies them).
    op.bulk_insert(
        targets,
        [
            {
                "id": BUILTIN_TARGET_ID,
                "kind": "builtin",
                "display_name": "remit directory",
                "settings": {},
                "created_at": datetime.now(UTC),
            }
        ],
    )
    op.create_table(
        "delivery_routes",
        sa.Column("origin_system", sa.String(length=32), nullable=False),
        sa.Column("resource_origin_id", sa.String(length=80), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", remit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["delivery_targets.id"],
            name=op.f("fk_delivery_routes_target_id_delivery_targets"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "origin_system", "resource_origin_id", name=op.f("pk_delivery_routes")
        ),
    )
    with op.batch_alter_table("delivery_routes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_routes_target_id"), ["target_id"], unique=False
        )

    with op.batch_alter_table("resource_grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "target_id",
                sa.String(length=36),
                server_default=BUILTIN_TARGET_ID,
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("claimed_generation", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("claimed_until", remit.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_resource_grants_target_id_delivery_targets"),
            "delivery_targets",
            ["target_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("resource_grants", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_resource_grants_target_id_delivery_targets"), type_="foreignkey"
        )
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_generation")
        batch_op.drop_column("claim_token")
        batch_op.drop_column("target_id")

    with op.batch_alter_table("delivery_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_routes_target_id"))

    op.drop_table("delivery_routes")
    op.drop_table("delivery_targets")
