"""Per-item metric values, one row per item × model × metric, for filtering and "worst first" sorting.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_metrics",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_item_metrics_item_id_items"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_item_metrics_model_id_models"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_id", "model_id", "name", name=op.f("pk_item_metrics")),
    )
    op.create_index("ix_item_metrics_model_name_value", "item_metrics", ["model_id", "name", "value", "item_id"])


def downgrade() -> None:
    op.drop_index("ix_item_metrics_model_name_value", table_name="item_metrics")
    op.drop_table("item_metrics")
