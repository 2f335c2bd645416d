"""Review: versioned annotations (lineage, retirement), comments, review queues and their items, verdicts, and
an index for the `review_status` column facet.

Existing annotations keep `lineage_id` NULL: a first version is its own lineage, so nothing is rewritten.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lineage_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("retired_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("retired_by", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_annotations_lineage", ["lineage_id"], unique=False,
                              sqlite_where=sa.text("lineage_id IS NOT NULL"),
                              postgresql_where=sa.text("lineage_id IS NOT NULL"))
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_review_status", ["dataset_id", "review_status", "id"], unique=False)
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["annotation_id"], ["annotations.id"],
                                name=op.f("fk_comments_annotation_id_annotations"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_comments_author_id_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_comments_item_id_items"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_comments_item_id"), ["item_id"], unique=False)
    op.create_table(
        "review_queues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("sort", sa.String(length=128), nullable=True),
        sa.Column("readers_per_item", sa.Integer(), nullable=False),
        sa.Column("assignees", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("readers_per_item IN (1, 2)", name=op.f("ck_review_queues_readers_per_item")),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_review_queues_dataset_id_datasets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_queues")),
    )
    with op.batch_alter_table("review_queues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_queues_dataset_id"), ["dataset_id"], unique=False)
    op.create_table(
        "review_queue_items",
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_review_queue_items_item_id_items"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["queue_id"], ["review_queues.id"],
                                name=op.f("fk_review_queue_items_queue_id_review_queues"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("queue_id", "position", name=op.f("pk_review_queue_items")),
    )
    with op.batch_alter_table("review_queue_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_queue_items_item_id"), ["item_id"], unique=False)
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=True),
        sa.Column("annotation_id", sa.Integer(), nullable=True),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("verdict IN ('accept', 'reject', 'uncertain', 'corrected')",
                           name=op.f("ck_reviews_verdict")),
        sa.ForeignKeyConstraint(["annotation_id"], ["annotations.id"],
                                name=op.f("fk_reviews_annotation_id_annotations"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_reviews_item_id_items"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["queue_id"], ["review_queues.id"], name=op.f("fk_reviews_queue_id_review_queues"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["users.id"], name=op.f("fk_reviews_reviewer_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_item_id"), ["item_id"], unique=False)
        batch_op.create_index("ix_reviews_queue_reader", ["queue_id", "reviewer_id", "item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_queue_reader")
        batch_op.drop_index(batch_op.f("ix_reviews_item_id"))
    op.drop_table("reviews")
    with op.batch_alter_table("review_queue_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_queue_items_item_id"))
    op.drop_table("review_queue_items")
    with op.batch_alter_table("review_queues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_queues_dataset_id"))
    op.drop_table("review_queues")
    with op.batch_alter_table("comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comments_item_id"))
    op.drop_table("comments")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_review_status")
    # plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): a batch copy would drop `annotations`, which the
    # self-referencing `superseded_by` foreign key refuses while rows point at each other
    op.drop_index("ix_annotations_lineage", table_name="annotations")
    for column in ("retired_by", "retired_at", "lineage_id"):
        op.drop_column("annotations", column)
