"""`medview backup OUT` and `medview restore IN`: a SQLite deployment's database and data files in one tar
(app/db/backup.py says what is in it and why; docs/deployment.md has the PostgreSQL recipe)."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.config import Settings
from app.console import err, out


def add_backup_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="copy the SQLite database (online, while serving) and the data files that "
                                      "rows refer to (masks, models, predictions) into one tar file OUT")
    p.add_argument("out", help="the backup file to write (e.g. medview-2026-12-04.tar)")
    p.add_argument("--force", action="store_true", help="replace OUT when it exists")
    p.add_argument("--files-only", action="store_true",
                   help="the data files only (PostgreSQL: dump the database with pg_dump, docs/deployment.md)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="put a backup back: its data files under MEDVIEW_DATA_DIR, its database at "
                                       "MEDVIEW_DATABASE_URL's SQLite path (stop the server first)")
    p.add_argument("backup", help="a file written by `medview backup`")
    p.add_argument("--force", action="store_true", help="replace the database file when one exists")
    p.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.backup import backup

    report = backup(settings.database_url, settings.data_dir, Path(args.out), force=args.force,
                    files_only=args.files_only)
    what = "data files only" if args.files_only else (
        f"database {report.database_bytes / 1e6:.1f} MB at revision {report.revision}, integrity ok, "
        f"{report.counts.get('items', 0)} items, {report.counts.get('annotations', 0)} annotations")
    out.print(f"{report.path}: {what}; {report.files} data files ({report.file_bytes / 1e6:.1f} MB); "
              f"{report.seconds:.1f} s", markup=False)
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.backup import restore

    report = restore(Path(args.backup), settings.database_url, settings.data_dir, force=args.force)
    if report.database is None:
        out.print(f"restored {report.files} data files into {settings.data_dir.resolve()} (no database in this "
                  "backup)", markup=False)
        return 0
    out.print(f"restored {report.database} (revision {report.revision}, {report.counts.get('items', 0)} items, "
              f"{report.counts.get('annotations', 0)} annotations) and {report.files} data files into "
              f"{settings.data_dir.resolve()}", markup=False)
    err.print("start the server as usual: it migrates an older schema to the newest first", markup=False)
    return 0
