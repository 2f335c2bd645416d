"""Key search on the 1 M-item PCam dataset (issue 14): `search=` is a prefix there (more than
SUBSTRING_MAX_ITEMS items), answered by a range on the (dataset_id, key) index. Warm p50/p95 of /items, /facets
and the dataset page with searches of a few widths, against GET /api/health and the unsearched first /items page
on the same connection.

    python bench/key_search.py [--root /tmp/medview-bench/pcam-1m] [--warm 20] [--extra-roots DIR:DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from bench_auth import auth_headers, bench_token  # noqa: E402
from facets_scale import Client, pct, start_server  # noqa: E402
from make_pcam_1m import DEFAULT_ROOT, ensure  # noqa: E402

SEARCHES = {  # PCam keys are SPLIT/INDEX
    "exact-width prefix (1 match)": "train%2F524287",
    "narrow prefix (~11 matches)": "train%2F52428",
    "wide prefix (~111k matches)": "train%2F5",
    "no match": "nosuchkey",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--extra-roots", default="", help="more MEDVIEW_DATA_ROOTS (a copied database's tree)")
    args = ap.parse_args(argv)
    root = args.root.expanduser().resolve()
    _, env = ensure(root)
    if args.extra_roots:
        env["MEDVIEW_DATA_ROOTS"] = f"{env['MEDVIEW_DATA_ROOTS']}:{args.extra_roots}"
    headers = auth_headers(bench_token(env))
    proc, port = start_server(env, root)
    rows: dict[str, list[float]] = {"health": [], "/items (no search)": []}
    try:
        c = Client(port, headers)
        c.get("/datasets/1")  # builds the facet index once
        for _ in range(args.warm):
            rows["health"].append(c.get("/api/health")[0])
            rows["/items (no search)"].append(c.get("/api/datasets/1/items?limit=64")[0])
            for name, q in SEARCHES.items():
                rows.setdefault(f"/items {name}", []).append(c.get(f"/api/datasets/1/items?limit=64&search={q}")[0])
                rows.setdefault(f"/facets {name}", []).append(c.get(f"/api/datasets/1/facets?search={q}")[0])
            narrow = SEARCHES["narrow prefix (~11 matches)"]
            rows.setdefault("page, narrow prefix", []).append(c.get(f"/datasets/1?search={narrow}")[0])
    finally:
        proc.terminate()
        proc.wait(10)
    floor = pct(rows["health"], 95)
    print(f"{'warm request':<44}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'p95/health':>12}")
    for name, values in rows.items():
        p95 = pct(values, 95)
        print(f"{name:<44}{len(values):>4}{statistics.median(values):>9.2f}{p95:>9.2f}{p95 / floor:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
