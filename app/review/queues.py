"""Review queues: a worklist of items fixed when the queue is made (the grid's filters and sort at that moment,
listed by app.catalog), read by one or two readers per item; progress per reader; agreement between the two
readers of a 2-reader queue (kappa, long axes, masks); the next item for a reader (blinded: never another reader's
verdict nor queue reading); queue readings; an adjudication queue of the disputed items; the lead's sign-off."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from app import audit
from app.accounts.users import get_user
from app.audit import Identified
from app.db.base import utcnow
from app.db.lookup import get_or_404
from app.db.models import Annotation, Dataset, Item, QueueItem, Review, ReviewQueue
from app.errors import Conflict, Forbidden, InvalidInput
from app.review import masks
from app.review.agreement import cohen_kappa, long_axis_agreement, mask_dice
from app.review.verdicts import add_review, refuse_if_signed_off, review_out

MaskLoader = Callable[[Annotation], np.ndarray]  # a mask annotation → its label array (app.review.masks)

MAX_ITEMS = 10_000  # items one queue may hold


def create_queue(session: Session, *, name: str, dataset: Dataset, filters: dict[str, list[str]], sort: str | None,
                 readers_per_item: int, assignees: Sequence[str], item_ids: Sequence[int], actor: Identified,
                 address: str | None = None, source_queue_id: int | None = None) -> ReviewQueue:
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
                        created_at=utcnow(), source_queue_id=source_queue_id)
    session.add(queue)
    session.flush()
    session.add_all([QueueItem(queue_id=queue.id, position=n, item_id=i) for n, i in enumerate(item_ids)])
    audit.record(session, actor, "queue.create", "review_queue", queue.id,
                 after={"name": name, "dataset_id": dataset.id, "filters": filters, "sort": sort,
                        "readers_per_item": readers_per_item, "assignees": names, "items": len(item_ids),
                        "source_queue_id": source_queue_id},
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
            "source_queue_id": queue.source_queue_id, "signed_off_by": queue.signed_off_by,
            "signed_off_at": queue.signed_off_at.isoformat() if queue.signed_off_at else None,
            "progress": {"items": total, "complete": complete, "reads_done": done_reads,
                         "reads_left": needed - done_reads, "left_for_me": mine,
                         "per_reader": [{"reader": name, "read": n} for name, n in sorted(per_reader.items())]}}


def list_queues(session: Session, reader: str | None) -> list[dict[str, Any]]:
    queues = session.scalars(select(ReviewQueue).order_by(ReviewQueue.id.desc())).all()
    return [summary(session, q, reader) for q in queues]


def detail(session: Session, queue_id: int, reader: str | None,
           load_mask: MaskLoader | None = None) -> dict[str, Any]:
    """The summary and `agreement`: Cohen's kappa on the verdicts of the items both readers have read, the
    long-axis difference of their RECIST queue readings (Bland–Altman) and Dice between their mask readings
    (`mask_dice`; `load_mask` reads a mask annotation's labels, by default app.review.masks through the session's
    pixel layer)."""
    queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
    reads = _reads(session, queue.id)
    pairs = [list(by_reader.values())[:2] for by_reader in reads.values() if len(by_reader) >= 2]
    first, second = [p[0].verdict for p in pairs], [p[1].verdict for p in pairs]
    readings = _readings(session, queue.id, [p[0].item_id for p in pairs])
    long_pairs, mask_pairs = [], []
    for a, b in pairs:
        mine, theirs = readings.get((a.item_id, a.reviewer), {}), readings.get((a.item_id, b.reviewer), {})
        for ra, rb in _paired(mine.get("recist", []), theirs.get("recist", [])):
            la, lb = (ra.meta or {}).get("long_mm"), (rb.meta or {}).get("long_mm")
            if isinstance(la, int | float) and isinstance(lb, int | float):
                long_pairs.append({"item_id": a.item_id, "first": la, "second": lb})
        mask_pairs += [(a.item_id, ma, mb) for ma, mb in _paired(mine.get("mask", []), theirs.get("mask", []))]
    agreement = {**cohen_kappa(first, second), "agree": sum(a == b for a, b in zip(first, second, strict=True)),
                 "disputed_items": [p[0].item_id for p in pairs if p[0].verdict != p[1].verdict],
                 "long_axis": long_axis_agreement(long_pairs),
                 "mask_dice": mask_dice(mask_pairs, load_mask or partial(_stored_labels, session))}
    order = _positions(session, queue.id)
    agreement["disputed_items"].sort(key=lambda i: order.get(i, 0))
    return {**summary(session, queue, reader, reads), "agreement": agreement}


def _stored_labels(session: Session, annotation: Annotation) -> np.ndarray:
    return masks.annotation_labels(session, annotation.id)


def _positions(session: Session, queue_id: int) -> dict[int, int]:
    return {item_id: pos for pos, item_id in session.execute(
        select(QueueItem.position, QueueItem.item_id).where(QueueItem.queue_id == queue_id))}


Readings = dict[tuple[int, str], dict[str, list[Annotation]]]


def _readings(session: Session, queue_id: int, item_ids: Sequence[int]) -> Readings:
    """{(item id, reader): {annotation kind: current queue readings}} of the queue on these items."""
    out: Readings = {}
    for start in range(0, len(item_ids), 500):
        rows = session.scalars(select(Annotation).where(Annotation.item_id.in_(item_ids[start:start + 500]),
                                                        Annotation.source.like("user:%"), Annotation.is_current())
                               .order_by(Annotation.id))
        for a in rows:
            if (a.meta or {}).get("queue_id") == queue_id:
                reader = a.source.removeprefix("user:")
                out.setdefault((a.item_id, reader), {}).setdefault(a.kind, []).append(a)
    return out


def _paired(first: list[Annotation], second: list[Annotation]) -> list[tuple[Annotation, Annotation]]:
    """Two readers' readings of one kind on one item, paired by the annotation both started from
    (`meta.derived_from`); when none is shared and each made exactly one reading, those two."""
    a = {(r.meta or {}).get("derived_from"): r for r in first}
    b = {(r.meta or {}).get("derived_from"): r for r in second}
    shared = [k for k in a if k is not None and k in b]
    if shared:
        return [(a[k], b[k]) for k in sorted(shared)]
    return [(first[0], second[0])] if len(first) == 1 and len(second) == 1 else []


def next_item(session: Session, queue_id: int, reader: Identified) -> dict[str, Any] | None:
    """The first item (in queue order) this reader has not read and that still needs a reader; None when none.
    With two readers per item, an item is offered to a second, different reader. Blinded: the answer never
    carries another reader's verdict."""
    queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
    if queue.assignees and reader.username not in queue.assignees:
        raise Forbidden(f"review queue {queue_id} is assigned to {', '.join(queue.assignees)}")
    # In SQL: reading every queue row and verdict into Python per call grew with the queue (~5% of the server's
    # CPU under bench/load.py with 2,000-item queues)
    readers = (select(Review.item_id, func.count(distinct(Review.reviewer)).label("n"),
                      func.max(case((Review.reviewer == reader.username, 1), else_=0)).label("mine"))
               .where(Review.queue_id == queue.id).group_by(Review.item_id).subquery())
    left = (select(QueueItem.position, QueueItem.item_id)
            .outerjoin(readers, readers.c.item_id == QueueItem.item_id)
            .where(QueueItem.queue_id == queue.id, func.coalesce(readers.c.mine, 0) == 0,
                   func.coalesce(readers.c.n, 0) < queue.readers_per_item))
    first = session.execute(left.order_by(QueueItem.position).limit(2)).all()
    if not first:
        return None
    position, item_id = first[0]
    left_for_me = session.scalar(select(func.count()).select_from(left.subquery())) or 0
    item = get_or_404(session, Item, item_id, "item")
    return {"queue_id": queue.id, "position": position, "items": _total(session, queue.id),
            "left_for_me": left_for_me, "item": {"id": item.id, "key": item.key, "dataset_id": item.dataset_id},
            "next_item_id": first[1][1] if len(first) > 1 else None}


def _queue_for_reader(session: Session, queue_id: int, reader: Identified) -> ReviewQueue:
    queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
    if queue.assignees and reader.username not in queue.assignees:
        raise Forbidden(f"review queue {queue_id} is assigned to {', '.join(queue.assignees)}")
    return queue


def check_reading(session: Session, queue_id: int, item_id: int, reader: Identified) -> ReviewQueue:
    """A queue reading (an annotation POSTed with `queue_id`) is allowed: the queue exists and is not signed off,
    the item is in it, the reader may work it and the item still needs them (or they have read it already)."""
    queue = _queue_for_reader(session, queue_id, reader)
    refuse_if_signed_off(queue)
    if session.scalar(select(QueueItem.position).where(QueueItem.queue_id == queue.id,
                                                       QueueItem.item_id == item_id)) is None:
        raise InvalidInput(f"queue_id: item {item_id} is not in review queue {queue_id}")
    readers = {r.reviewer for r in session.scalars(select(Review).where(Review.queue_id == queue.id,
                                                                        Review.item_id == item_id))}
    if reader.username not in readers and len(readers) >= queue.readers_per_item:
        raise InvalidInput(f"queue_id: item {item_id} already has its {queue.readers_per_item} reader(s) "
                           f"in queue {queue_id}")
    return queue


def blinded(session: Session, item: dict[str, Any], queue_id: int, reader: str | None) -> dict[str, Any]:
    """The item JSON as a reader of queue `queue_id` may see it: in a 2-reader queue, until both readers have
    read the item, other readers' queue readings (annotations with meta.queue_id = the queue) are left out."""
    queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
    if queue.readers_per_item < 2:
        return item
    readers = {r.reviewer for r in session.scalars(select(Review).where(Review.queue_id == queue.id,
                                                                        Review.item_id == item["id"]))}
    if len(readers) >= queue.readers_per_item:
        return item
    own = f"user:{reader}"
    kept = [a for a in item.get("annotations", [])
            if (a.get("meta") or {}).get("queue_id") != queue.id or a.get("source") == own]
    return {**item, "annotations": kept}


def reader_state(session: Session, queue_id: int, reader: Identified, is_admin: bool) -> dict[str, Any]:
    """What review mode needs for one reader: the queue's summary, the reader's own reads in queue order (their
    latest verdict on each, never another reader's), their verdict counts, their next item (or None) and whether
    they may sign the queue off."""
    queue = _queue_for_reader(session, queue_id, reader)
    reads = _reads(session, queue.id)
    order = _positions(session, queue.id)
    mine = sorted(((order.get(item_id, 0), item_id, by_reader[reader.username])
                   for item_id, by_reader in reads.items() if reader.username in by_reader))
    counts: dict[str, int] = {}
    for _, _, r in mine:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    found = next_item(session, queue.id, reader)
    out = summary(session, queue, reader.username, reads)
    return {"queue": out, "mine": [{"position": pos, "item_id": item_id, "verdict": r.verdict}
                                   for pos, item_id, r in mine],
            "counts": counts, "next": found,
            "can_sign_off": can_sign_off(queue, reader, is_admin) and queue.signed_off_at is None
            and out["progress"]["complete"] == out["progress"]["items"]}


def can_sign_off(queue: ReviewQueue, actor: Identified, is_admin: bool) -> bool:
    return is_admin or actor.username == queue.created_by


def sign_off(session: Session, queue_id: int, actor: Identified, is_admin: bool,
             address: str | None = None) -> ReviewQueue:
    """The lead (an admin or the queue's creator) signs a complete queue off; afterwards it takes no verdicts."""
    queue = get_or_404(session, ReviewQueue, queue_id, "review queue")
    if not can_sign_off(queue, actor, is_admin):
        raise Forbidden(f"only an admin or the queue's creator ({queue.created_by}) signs review queue "
                        f"{queue_id} off")
    refuse_if_signed_off(queue)
    progress = summary(session, queue)["progress"]
    if progress["complete"] < progress["items"]:
        raise Conflict(f"review queue {queue_id} is not complete: {progress['items'] - progress['complete']} of "
                       f"{progress['items']} items still need a reader")
    queue.signed_off_by, queue.signed_off_at = actor.username, utcnow()
    audit.record(session, actor, "queue.sign_off", "review_queue", queue.id, before={"signed_off_by": None},
                 after={"signed_off_by": actor.username, "signed_off_at": queue.signed_off_at.isoformat(),
                        "items": progress["items"]}, address=address)
    session.commit()
    return queue


def adjudication_queue(session: Session, queue_id: int, actor: Identified, *, name: str | None,
                       assignees: Sequence[str], address: str | None = None) -> ReviewQueue:
    """A 1-reader queue of the queue's disputed items (readers disagreed), in the queue's order."""
    source = get_or_404(session, ReviewQueue, queue_id, "review queue")
    disputed = detail(session, queue_id, None)["agreement"]["disputed_items"]
    if not disputed:
        raise InvalidInput(f"review queue {queue_id} has no disputed item to adjudicate")
    dataset = get_or_404(session, Dataset, source.dataset_id, "dataset")
    return create_queue(session, name=name or f"Adjudication: {source.name}", dataset=dataset,
                        filters={"review_status": ["disputed"]}, sort=source.sort, readers_per_item=1,
                        assignees=assignees, item_ids=disputed, actor=actor, address=address,
                        source_queue_id=source.id)


def undo_last(session: Session, queue_id: int, actor: Identified, address: str | None = None) -> dict[str, Any]:
    """Undo the reader's newest verdict in the queue. Verdicts are append-only, so undo appends: the reader's
    verdict before it on the same item again when they had one, else `uncertain` (the item stays theirs, back in
    review, commented "undo of <verdict>"). Returns the item id, the undone verdict and the new one."""
    queue = _queue_for_reader(session, queue_id, actor)
    refuse_if_signed_off(queue)
    mine = list(session.scalars(select(Review).where(Review.queue_id == queue.id, Review.reviewer == actor.username)
                                .order_by(Review.id.desc()).limit(1)))
    if not mine:
        raise InvalidInput(f"review queue {queue_id}: you have no verdict here to undo")
    last = mine[0]
    before = session.scalars(select(Review).where(Review.queue_id == queue.id, Review.reviewer == actor.username,
                                                  Review.item_id == last.item_id, Review.id < last.id)
                             .order_by(Review.id.desc()).limit(1)).first()
    undone = review_out(last)
    if before is not None:
        result = add_review(session, last.item_id, before.verdict, actor, annotation_id=before.annotation_id,
                            comment=f"undo of {last.verdict}", queue_id=queue.id, address=address)
    else:
        result = add_review(session, last.item_id, "uncertain", actor, comment=f"undo of {last.verdict}",
                            queue_id=queue.id, address=address)
    return {"item_id": last.item_id, "undone": undone, "review": review_out(result.review),
            "review_status": result.after, "dataset_id": result.dataset_id, "before_status": result.before}


def item_keys(session: Session, item_ids: Sequence[int]) -> dict[int, str]:
    """{item id: key} for listing items of a queue (the disputed ones) by name."""
    return {item_id: key for item_id, key in session.execute(select(Item.id, Item.key)
                                                             .where(Item.id.in_(list(item_ids))))}
