"""Review queues: sign-off by the queue's lead (who and when) and the queue a queue was made from (an
adjudication queue points at its source). All three columns are nullable: existing queues are simply not signed off.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE (no batch copy): on SQLite a copy drops `review_queues`, and the foreign keys pointing at it
    # (reviews.queue_id ON DELETE SET NULL) would clear every verdict's queue
    op.add_column("review_queues", sa.Column("signed_off_by", sa.String(length=64), nullable=True))
    op.add_column("review_queues", sa.Column("signed_off_at", sa.DateTime(), nullable=True))
    op.add_column("review_queues", sa.Column("source_queue_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35), for the same reason
    for column in ("source_queue_id", "signed_off_at", "signed_off_by"):
        op.drop_column("review_queues", column)
