"""Review queues: a worklist of items fixed when the queue is made (the grid's filters and sort at that moment,
listed by app.catalog), read by one or two readers per item; progress per reader; Cohen's kappa between the two
readers of a 2-reader queue; and the next item for a reader (blinded: never another reader's verdict)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.accounts.users import get_user
from app.audit import Identified
from app.db.base import utcnow
from app.db.lookup import get_or_404
from app.db.models import Dataset, Item, QueueItem, Review, ReviewQueue
from app.errors import Forbidden, InvalidInput
from app.review.agreement import cohen_kappa

MAX_ITEMS = 10_000  # items one queue may hold


def create_queue(session: Session, *, name: str, dataset: Dataset, filters: dict[str, list[str]], sort: str | None,
                 readers_per_item: int, assignees: Sequence[str], item_ids: Sequence[int], actor: Identified,
                 address: str | None = None) -> ReviewQueue:
    if readers_per_item not in (1, 2):
        raise InvalidInput("readers_per_item: 1 or 2")
    names = []
    for assignee in assignees:
        user = get_user(session, assignee)  # NotFound naming an unknown user
        if user.role not in ("reviewer", "admin"):
            raise InvalidInput(f"assignees: {user.username} is {user.role}; readers need the reviewer role")
        names.append(user.username)
    if readers_per_item == 2 and names and len(set(names)) < 2:
        raise InvalidInput("assignees: a 2-reader queue needs at least two readers")
    if not item_ids:
        raise InvalidInput("filters: no item of the dataset matches them; the queue would be empty")
    queue = ReviewQueue(name=name, dataset_id=dataset.id, filters=filters, sort=sort,
                        readers_per_item=readers_per_item, assignees=names, created_by=actor.username,
                        created_at=utcnow())
    session.add(queue)
    session.flush()
    session.add_all([QueueItem(queue_id=queue.id, position=n, item_id=i) for n, i in enumerate(item_ids)])
    audit.record(session, actor, "queue.create", "review_queue", queue.id,
                 after={"name": name, "dataset_id": dataset.id, "filters": filters, "sort": sort,
                        "readers_per_item": readers_per_item, "assignees": names, "items": len(item_ids)},
                 address=address)
    session.commit()
    return queue


def _reads(session: Session, queue_id: int) -> dict[int, dict[str, Review]]:
    """{item id: {reader: their latest verdict}} in the queue, readers in the order they first read."""
    out: dict[int, dict[str, Review]] = {}
    for r in session.scalars(select(Review).where(Review.queue_id == queue_id).order_by(Review.id)):
        out.setdefault(r.item_id, {})[r.reviewer] = r
    return out


def _total(session: Session, queue_id: int) -> int:
    return session.scalar(select(func.count()).select_from(QueueItem).where(QueueItem.queue_id == queue_id)) or 0


def summary(session: Session, queue: ReviewQueue, reader: str | None = None,
            reads: dict[int, dict[str, Review]] | None = None) -> dict[str, Any]:
    reads = _reads(session, queue.id) if reads is None else reads
    total = _total(session, queue.id)
    per_reader: dict[str, int] = {name: 0 for name in queue.assignees}
    for by_reader in reads.values():
        for name in by_reader:
            per_reader[name] = per_reader.get(name, 0) + 1
    complete = sum(1 for by_reader in reads.values() if len(by_reader) >= queue.readers_per_item)
    needed = total * queue.readers_per_item
    done_reads = sum(min(len(v), queue.readers_per_item) for v in reads.values())
    mine = None
    if reader is not None:
        mine = sum(1 for item_id, by_reader in reads.items()
                   if reader not in by_reader and len(by_reader) < queue.readers_per_item)
        mine += total - len(reads)
    return {"id": queue.id, "name": queue.name, "dataset_id": queue.dataset_id, "filters": queue.filters,
            "sort": queue.sort, "readers_per_item": queue.readers_per_item, "assignees": list(queue.assignees),
            "created_by": queue.created_by, "created_at": queue.created_at.isoformat(),
            "progress": {"items": total, "complete": complete, "reads_done": done_reads,
                         "reads_left": needed - done_reads, "left_for_me": mine,
                         "per_reader": [{"reader": name, "read": n} for name, n in sorted(per_reader.items())]}}


def list_queues(session: Session, reader: str | None) -> list[dict[str, Any]]:
    queues = session.scalars(select(ReviewQueue).order_by(ReviewQueue.id.desc())).all()
    return [summary(session, q, reader) for q in queues]


def detail(session: Session, queue_id: int, reader: str | None) -> dict[str, Any]:
    queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
    reads = _reads(session, queue.id)
    pairs = [list(by_reader.values())[:2] for by_reader in reads.values() if len(by_reader) >= 2]
    first, second = [p[0].verdict for p in pairs], [p[1].verdict for p in pairs]
    agreement = {**cohen_kappa(first, second), "agree": sum(a == b for a, b in zip(first, second, strict=True)),
                 "disputed_items": sorted(p[0].item_id for p in pairs if p[0].verdict != p[1].verdict)}
    return {**summary(session, queue, reader, reads), "agreement": agreement}


def next_item(session: Session, queue_id: int, reader: Identified) -> dict[str, Any] | None:
    """The first item (in queue order) this reader has not read and that still needs a reader; None when none.
    With two readers per item, an item is offered to a second, different reader. Blinded: the answer never
    carries another reader's verdict."""
    queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
    if queue.assignees and reader.username not in queue.assignees:
        raise Forbidden(f"review queue {queue_id} is assigned to {', '.join(queue.assignees)}")
    reads = _reads(session, queue.id)
    total = _total(session, queue.id)
    rows = session.execute(select(QueueItem.position, QueueItem.item_id).where(QueueItem.queue_id == queue.id)
                           .order_by(QueueItem.position))
    left = [(pos, item_id) for pos, item_id in rows
            if reader.username not in reads.get(item_id, {}) and len(reads.get(item_id, {})) < queue.readers_per_item]
    if not left:
        return None
    position, item_id = left[0]
    item = get_or_404(session, Item, item_id, "item")
    return {"queue_id": queue.id, "position": position, "items": total, "left_for_me": len(left),
            "item": {"id": item.id, "key": item.key, "dataset_id": item.dataset_id},
            "next_item_id": left[1][1] if len(left) > 1 else None}
