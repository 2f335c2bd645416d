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
    with op.batch_alter_table("review_queues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_off_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("signed_off_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("source_queue_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_queues", schema=None) as batch_op:
        batch_op.drop_column("source_queue_id")
        batch_op.drop_column("signed_off_at")
        batch_op.drop_column("signed_off_by")
