"""The server-side cost of one verdict at 1 M items (target: p50 under 5 ms on SQLite), against a bare baseline in
the same database: a plain INSERT of one review row and UPDATE of one item's status, committed.

    python bench/review_write.py [--source /tmp/medview-bench/pcam-1m] [--verdicts 300]

The 1 M-item PCam database is bench/make_pcam_1m.py's (generated and indexed on first use); this bench works on a
copy (SQLite's backup API) upgraded to the current schema, so the shared file is never written. Timed, per verdict:
`app.review.verdicts.add_review` (what POST /api/items/{id}/reviews runs: checks, the append-only insert, the
status rule, the item update, the audit event, one commit) outside a queue and inside a 2-reader queue of 5,000
items, on items spread over the dataset; then the bare INSERT + UPDATE through sqlite3 with the app's pragmas.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from make_pcam_1m import DEFAULT_ROOT, ensure  # noqa: E402

TARGET_MS = 5.0


@dataclass
class Reader:
    id: int
    username: str


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def copy_database(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    src.backup(dst)
    dst.close()
    src.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--verdicts", type=int, default=300)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medview-bench/review-write"))
    args = ap.parse_args(argv)

    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from app.accounts.users import add_user
    from app.db.migrate import upgrade
    from app.db.models import Dataset, Item
    from app.db.session import make_engine
    from app.review import queues, verdicts

    source_db, _ = ensure(args.source.expanduser().resolve())
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    db = work / "medview.db"
    start = time.perf_counter()
    copy_database(source_db, db)
    url = f"sqlite:///{db}"
    upgrade(url)
    print(f"copied and upgraded the 1 M-item database in {time.perf_counter() - start:.1f} s", flush=True)
    engine = make_engine(url)
    rng = random.Random(7)
    with Session(engine) as session:
        dataset = session.scalars(select(Dataset)).first()
        assert dataset is not None
        n_items = session.scalar(select(func.count()).select_from(Item).where(Item.dataset_id == dataset.id)) or 0
        low, high = session.execute(select(func.min(Item.id), func.max(Item.id))).one()
        users = [add_user(session, name, "reviewer", "bench-password-123") for name in ("rita", "rob")]
        session.commit()
        readers = [Reader(u.id, u.username) for u in users]
        picked = rng.sample(range(low, high + 1), 3 * args.verdicts + 5000)
        queue_ids = picked[:5000]
        queue = queues.create_queue(session, name="bench", dataset=dataset, filters={}, sort=None, readers_per_item=2,
                                    assignees=[r.username for r in readers], item_ids=queue_ids, actor=readers[0])
        qid = queue.id
    print(f"{n_items:,} items; queue {qid} of {len(queue_ids):,} items, 2 readers", flush=True)

    def timed(call) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        call()
        return (time.perf_counter() - t) * 1000

    results: dict[str, list[float]] = {"verdict, no queue": [], "verdict in a 2-reader queue (1st reader)": [],
                                       "verdict in a 2-reader queue (2nd reader)": []}
    outside = picked[5000:5000 + args.verdicts]
    with Session(engine) as session:
        for item_id in outside:
            results["verdict, no queue"].append(timed(
                lambda i=item_id: verdicts.add_review(session, i, "accept", readers[0])))
        for item_id in queue_ids[:args.verdicts]:
            results["verdict in a 2-reader queue (1st reader)"].append(timed(
                lambda i=item_id: verdicts.add_review(session, i, "accept", readers[0], queue_id=qid)))
        for item_id in queue_ids[:args.verdicts]:
            results["verdict in a 2-reader queue (2nd reader)"].append(timed(
                lambda i=item_id: verdicts.add_review(session, i, "reject", readers[1], queue_id=qid)))
    engine.dispose()

    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "cache_size=-65536"):
        conn.execute(f"PRAGMA {pragma}")
    bare: list[float] = []
    for item_id in picked[5000 + args.verdicts:5000 + 2 * args.verdicts]:
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO reviews (item_id, reviewer_id, reviewer, verdict, created_at) "
                      "VALUES (?, ?, 'rita', 'accept', CURRENT_TIMESTAMP)", (item_id, readers[0].id))
        conn.execute("UPDATE items SET review_status = 'accepted' WHERE id = ?", (item_id,))
        conn.execute("COMMIT")
        bare.append((time.perf_counter() - t) * 1000)
    conn.close()

    b50 = statistics.median(bare)
    print(f"\n{'one write':<46}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'p50/bare':>10}")
    for name, values in results.items():
        p50 = statistics.median(values)
        print(f"{name:<46}{len(values):>5}{p50:>9.2f}{pct(values, 95):>9.2f}{p50 / b50:>10.1f}")
    print(f"{'bare INSERT + UPDATE + COMMIT (sqlite3)':<46}{len(bare):>5}{b50:>9.2f}{pct(bare, 95):>9.2f}{1:>10.1f}")
    worst = max(statistics.median(v) for v in results.values())
    print(f"target p50 < {TARGET_MS:g} ms: {'met' if worst < TARGET_MS else 'NOT met'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
