"""Partial indexes on items' sparse columns, an index on series_id, and series without a study.

Patch and photo datasets (PCam: 327,680 items) have no patient or sex: indexing their NULLs cost bulk
ingest time for nothing. PCam whole-slide images become series (slide facet) with no study.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _where(column: str) -> dict:
    return {"sqlite_where": sa.text(f"{column} IS NOT NULL"), "postgresql_where": sa.text(f"{column} IS NOT NULL")}


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_patient")
        batch_op.drop_index("ix_items_sex")
        batch_op.create_index("ix_items_patient", ["patient_id"], unique=False, **_where("patient_id"))
        batch_op.create_index("ix_items_sex", ["dataset_id", "sex", "id"], unique=False, **_where("sex"))
        batch_op.create_index("ix_items_series", ["series_id"], unique=False, **_where("series_id"))
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.alter_column("study_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM series WHERE study_id IS NULL"))  # cannot exist before 0003
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.alter_column("study_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_series")
        batch_op.drop_index("ix_items_sex")
        batch_op.drop_index("ix_items_patient")
        batch_op.create_index("ix_items_sex", ["dataset_id", "sex", "id"], unique=False)
        batch_op.create_index("ix_items_patient", ["patient_id"], unique=False)
