"""Comments on items (optionally on one of their annotations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.audit import Identified
from app.db.base import utcnow
from app.db.lookup import get_or_404
from app.db.models import Annotation, Comment, Item
from app.errors import InvalidInput

MAX_TEXT = 4000


def comment_out(c: Comment) -> dict[str, Any]:
    return {"id": c.id, "item_id": c.item_id, "annotation_id": c.annotation_id, "author": c.author,
            "text": c.text, "created_at": c.created_at.isoformat()}


def add_comment(session: Session, item_id: int, text: str, annotation_id: int | None, actor: Identified,
                address: str | None = None) -> Comment:
    item = get_or_404(session, Item, item_id, "item")
    if not text.strip() or len(text) > MAX_TEXT:
        raise InvalidInput(f"text: a comment has 1 to {MAX_TEXT} characters")
    if annotation_id is not None:
        annotation = get_or_404(session, Annotation, annotation_id, "annotation")
        if annotation.item_id != item.id:
            raise InvalidInput(f"annotation_id: annotation {annotation_id} is not on item {item_id}")
    row = Comment(item_id=item.id, annotation_id=annotation_id, author_id=actor.id, author=actor.username,
                  text=text, created_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, actor, "comment.add", "item", item.id,
                 after={"comment_id": row.id, "annotation_id": annotation_id, "text": text}, address=address)
    session.commit()
    return row


def item_comments(session: Session, item_id: int) -> list[Comment]:
    get_or_404(session, Item, item_id, "item")
    return list(session.scalars(select(Comment).where(Comment.item_id == item_id).order_by(Comment.id)))
