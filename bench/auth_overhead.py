"""What signing in costs: grid requests with a bearer token and with a session cookie against the same requests on
an install with MEDVIEW_PUBLIC_READ (no credential to check), and the sign-in itself (argon2id verify).

    python bench/auth_overhead.py [--patches 20000] [--rounds 300]

Both servers run in this process on one database (a generated PCam), over HTTP keep-alive; the three kinds of
request are interleaved round by round so machine noise hits them alike. Prints medians and ratios
(signed-in / public): the goal is ≤ 1.10 on the grid's requests.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PATHS = ("/api/datasets/1/facets?split=train", "/api/datasets/1/items?limit=64&split=valid",
         "/api/datasets/1/items?limit=64&sort=-label")


def serve(app: object) -> tuple[object, int]:
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, port


def timed_get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        raise SystemExit(f"{path}: HTTP {r.status}")
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args(argv)

    from app.accounts import tokens, users
    from app.accounts.secret import load_or_create_secret
    from app.accounts.sessions import make_session_value
    from app.config import Settings
    from app.datasets.ingest import ingest_path
    from app.datasets.pcam.synth import generate_pcam
    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory
    from app.main import create_app

    tmp = Path(tempfile.mkdtemp(prefix="medview-bench-auth-"))
    url = f"sqlite:///{tmp}/mv.db"
    upgrade(url)
    base = {"database_url": url, "data_dir": tmp / "data", "data_roots": str(tmp)}
    signed, public = Settings(_env_file=None, **base), Settings(_env_file=None, public_read=True, **base)
    root = generate_pcam(tmp / "pcam", n_per_split=(args.patches, 2048, 2048), seed=1).root
    engine = make_engine(url)
    ingest_path(engine, signed, root, kind="pcam", name="pcam")
    with make_session_factory(engine)() as session:
        t = time.perf_counter()
        user = users.add_user(session, "bench", "viewer", "bench-password-123")
        hash_ms = (time.perf_counter() - t) * 1000
        token, _ = tokens.create_token(session, user, "bench")
        cookie = make_session_value(load_or_create_secret(signed.data_dir), user)
        t = time.perf_counter()
        assert users.authenticate(session, "bench", "bench-password-123") is not None
        verify_ms = (time.perf_counter() - t) * 1000
    engine.dispose()

    s1, p1 = serve(create_app(signed))
    s2, p2 = serve(create_app(public))
    kinds = {"public": (p2, {}), "token": (p1, {"Authorization": f"Bearer {token}"}),
             "cookie": (p1, {"Cookie": f"medview_session={cookie}"})}
    conns = {k: http.client.HTTPConnection("127.0.0.1", port) for k, (port, _) in kinds.items()}
    times: dict[str, dict[str, list[float]]] = {k: {p: [] for p in PATHS} for k in kinds}
    for k, (_, headers) in kinds.items():  # warm: facet index, caches, sign-in cache
        for path in PATHS:
            timed_get(conns[k], path, headers)
    for _ in range(args.rounds):
        for path in PATHS:
            for k, (_, headers) in kinds.items():
                times[k][path].append(timed_get(conns[k], path, headers))
    s1.should_exit = s2.should_exit = True

    print(f"sign-in: argon2id hash {hash_ms:.0f} ms, verify {verify_ms:.0f} ms (once per sign-in, not per request)")
    print(f"{'request':48} {'public ms':>10} {'token ms':>9} {'cookie ms':>10} {'token/pub':>10} {'cookie/pub':>11}")
    for path in PATHS:
        pub, tok, coo = (statistics.median(times[k][path]) for k in ("public", "token", "cookie"))
        print(f"{path:48} {pub:10.2f} {tok:9.2f} {coo:10.2f} {tok / pub:10.2f} {coo / pub:11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
