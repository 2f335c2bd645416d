"""Column facets: split, label and sex are counted and filtered on items, not item_facets.

Adds the (dataset_id, column, id) indexes that serve those counts and keyset pages, and removes the
facet rows that duplicated the columns (data written by 0001-era ingests).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("split", "label", "sex")


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.create_index(f"ix_items_{column}", ["dataset_id", column, "id"], unique=False)
    op.execute(sa.text("DELETE FROM item_facets WHERE field IN ('split', 'label', 'sex')"))


def downgrade() -> None:
    for column in COLUMNS:  # restore the facet rows from the columns
        op.execute(sa.text(
            f"INSERT INTO item_facets (item_id, field, value, dataset_id) "
            f"SELECT id, '{column}', {column}, dataset_id FROM items WHERE {column} IS NOT NULL"))
    with op.batch_alter_table("items", schema=None) as batch_op:
        for column in COLUMNS:
            batch_op.drop_index(f"ix_items_{column}")
