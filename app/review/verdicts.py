"""Review verdicts and the item's `review_status` that follows them.

Status rules (docs/review.md): an item starts `unreviewed`. A verdict outside a 2-reader queue sets it at once:
accept → `accepted`, reject → `rejected`, corrected → `corrected`, uncertain → `in_review`. In a 2-reader queue
the first reader's verdict makes it `in_review`; once both have read it, agreeing verdicts set the status as above
and differing ones make it `disputed`. A reader's later verdict replaces their earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import audit
from app.audit import Identified
from app.datasets import facets
from app.db.base import utcnow
from app.db.lookup import get_or_404
from app.db.models import Annotation, Item, QueueItem, Review, ReviewQueue
from app.errors import Conflict, Forbidden, InvalidInput

VERDICTS = ("accept", "reject", "uncertain", "corrected")
STATUSES = ("unreviewed", "in_review", "accepted", "rejected", "corrected", "disputed")
STATUS_OF_VERDICT = {"accept": "accepted", "reject": "rejected", "corrected": "corrected", "uncertain": "in_review"}


@dataclass
class Verdict:
    review: Review
    before: str  # the item's review_status before
    after: str
    dataset_id: int
    readers: list[dict[str, Any]] | None  # the queue readers' verdicts, once every reader has read the item


def review_out(r: Review) -> dict[str, Any]:
    return {"id": r.id, "item_id": r.item_id, "queue_id": r.queue_id, "annotation_id": r.annotation_id,
            "reviewer": r.reviewer, "verdict": r.verdict, "comment": r.comment, "created_at": r.created_at.isoformat()}


def latest_per_reader(session: Session, item_id: int, queue_id: int | None) -> dict[int | str, Review]:
    """Each reader's newest verdict on the item (within the queue when given), in the order they first read it."""
    stmt = select(Review).where(Review.item_id == item_id).order_by(Review.id)
    if queue_id is not None:
        stmt = stmt.where(Review.queue_id == queue_id)
    out: dict[int | str, Review] = {}
    for r in session.scalars(stmt):
        out[r.reviewer_id if r.reviewer_id is not None else r.reviewer] = r
    return out


def status_after(session: Session, review: Review, queue: ReviewQueue | None) -> str:
    if queue is None or queue.readers_per_item < 2:
        return STATUS_OF_VERDICT[review.verdict]
    readers = list(latest_per_reader(session, review.item_id, queue.id).values())
    if len(readers) < 2:
        return "in_review"
    verdicts = {r.verdict for r in readers[:2]}
    return STATUS_OF_VERDICT[verdicts.pop()] if len(verdicts) == 1 else "disputed"


def refuse_if_signed_off(queue: ReviewQueue) -> None:
    """409 once the queue's lead signed it off: its verdicts and readings are final."""
    if queue.signed_off_at is not None:
        raise Conflict(f"review queue {queue.id} was signed off by {queue.signed_off_by} at "
                       f"{queue.signed_off_at.isoformat()}: it takes no more verdicts or readings")


def add_review(session: Session, item_id: int, verdict: str, actor: Identified, *, annotation_id: int | None = None,
               comment: str | None = None, queue_id: int | None = None, address: str | None = None) -> Verdict:
    item = get_or_404(session, Item, item_id, "item")
    if verdict not in VERDICTS:
        raise InvalidInput(f"verdict: {verdict!r} is not one of {', '.join(VERDICTS)}")
    if annotation_id is not None and get_or_404(session, Annotation, annotation_id, "annotation").item_id != item.id:
        raise InvalidInput(f"annotation_id: annotation {annotation_id} is not on item {item_id}")
    queue = None
    if queue_id is not None:
        queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
        refuse_if_signed_off(queue)
        if session.scalar(select(QueueItem.position).where(QueueItem.queue_id == queue.id,
                                                           QueueItem.item_id == item.id)) is None:
            raise InvalidInput(f"queue_id: item {item_id} is not in review queue {queue_id}")
        if queue.assignees and actor.username not in queue.assignees:
            raise Forbidden(f"review queue {queue_id} is assigned to {', '.join(queue.assignees)}")
        others = latest_per_reader(session, item.id, queue.id)
        if actor.id not in others and len(others) >= queue.readers_per_item:
            raise InvalidInput(f"queue_id: item {item_id} already has its {queue.readers_per_item} reader(s) "
                               f"in queue {queue_id}")
    review = Review(item_id=item.id, queue_id=queue_id, annotation_id=annotation_id, reviewer_id=actor.id,
                    reviewer=actor.username, verdict=verdict, comment=comment, created_at=utcnow())
    session.add(review)
    session.flush()
    before = item.review_status
    after = status_after(session, review, queue)
    if after != before:
        session.execute(update(Item).where(Item.id == item.id).values(review_status=after))
    audit.record(session, actor, "review.add", "item", item.id, before={"review_status": before},
                 after={"review_id": review.id, "verdict": verdict, "queue_id": queue_id,
                        "annotation_id": annotation_id, "review_status": after}, address=address)
    facets.touch(session, item.dataset_id, [item.id])  # live review_status / reviewer counts in every process
    session.commit()
    readers = None
    if queue is not None:
        latest = list(latest_per_reader(session, item.id, queue.id).values())
        if len(latest) >= queue.readers_per_item:
            readers = [review_out(r) for r in latest]
    return Verdict(review, before, after, item.dataset_id, readers)
