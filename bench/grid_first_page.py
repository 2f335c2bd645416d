"""First grid page time on the 1 M-item PCam dataset: the dataset page's HTML (first page of cards, live facets,
sort menu) and its first /items and contact-sheet requests, cold (fresh server: includes building the facet
index) and warm; against GET /api/health on the same connection.

    python bench/grid_first_page.py [--root /tmp/medview-bench/pcam-1m] [--repeat 3] [--warm 20]
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

PAGE = "/datasets/1"
ITEMS = "/api/datasets/1/items?limit=64"
SHEET = "/api/datasets/1/sheet?split=valid&limit=64&cols=8&tile=96&overlays=gt"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--repeat", type=int, default=3, help="cold starts")
    ap.add_argument("--warm", type=int, default=20, help="warm requests per kind")
    args = ap.parse_args(argv)
    root = args.root.expanduser().resolve()
    _, env = ensure(root)
    headers = auth_headers(bench_token(env))  # signed in, as every user is
    cold: list[float] = []
    warm: dict[str, list[float]] = {"health": [], "dataset page (HTML)": [], "first /items page": [],
                                    "contact sheet (64 valid patches)": []}
    for _ in range(args.repeat):
        proc, port = start_server(env, root)
        try:
            c = Client(port, headers)
            cold.append(c.get(PAGE)[0])
            for _ in range(args.warm):
                warm["health"].append(c.get("/api/health")[0])
                warm["dataset page (HTML)"].append(c.get(PAGE)[0])
                warm["first /items page"].append(c.get(ITEMS)[0])
                warm["contact sheet (64 valid patches)"].append(c.get(SHEET)[0])
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"cold dataset page (fresh server, builds the facet index): {', '.join(f'{v:.0f}' for v in cold)} ms")
    floor = pct(warm["health"], 95)
    print(f"\n{'warm request':<36}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'p95/health':>12}")
    for name, values in warm.items():
        p95 = pct(values, 95)
        print(f"{name:<36}{len(values):>5}{statistics.median(values):>9.2f}{p95:>9.2f}{p95 / floor:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
