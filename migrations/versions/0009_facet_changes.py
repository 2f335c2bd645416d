"""Live review facets: `facet_changes` (one row per item whose `review_status` / `reviewer` / `edited` changed,
read by every process's facet index to stay live without a rebuild) and a partial index of current user
annotation versions (the `edited` facet).

Nothing is backfilled: `reviewer` and `edited` are computed from `reviews` and `annotations`, which 0007 made.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER_CURRENT = "source LIKE 'user:%' AND superseded_by IS NULL AND retired_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "facet_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_facet_changes_dataset_id_datasets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facet_changes")),
    )
    with op.batch_alter_table("facet_changes", schema=None) as batch_op:
        batch_op.create_index("ix_facet_changes_dataset", ["dataset_id", "id"], unique=False)
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index("ix_annotations_user_current", ["dataset_id", "item_id"], unique=False,
                              sqlite_where=sa.text(USER_CURRENT), postgresql_where=sa.text(USER_CURRENT))


def downgrade() -> None:
    op.drop_index("ix_annotations_user_current", table_name="annotations")
    with op.batch_alter_table("facet_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_facet_changes_dataset")
    op.drop_table("facet_changes")
