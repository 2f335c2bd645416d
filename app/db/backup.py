"""Backup and restore of a deployment's state (`medview backup OUT`, `medview restore IN`; docs/deployment.md).

What a backup holds, in one uncompressed tar file:
- `medview.db`: the SQLite database, copied with SQLite's online backup API while the server keeps serving and
  writing, then checked with `PRAGMA integrity_check`. The copy is made in ONE backup step: on a WAL database that
  step is one read transaction, a consistent snapshot that does not block writers. (Copying in several small steps
  restarts from the first page whenever another connection writes, so under steady writes it may never finish.)
- `data/masks/`, `data/models/`, `data/predictions/`, `data/embeddings/`, `data/secret_key`: the files of the
  data dir that rows refer to and that nothing can derive again, or only by re-running jobs — users' stored masks
  (content-addressed), registered model files, predicted masks, embedding vectors, and the key that signs
  sessions. Dataset folders (the user's own read-only data), decompression work files
  and exports are not included: they are re-derivable or not ours.
- `manifest.json`: format version, schema revision, row counts per table, and the data dir the rows name.

The database is copied before the files: a mask or model file is written before the row that names it commits, so
every file the snapshot names is on disk when the files are copied (files newer than the snapshot come along too,
harmlessly). The tar is written under a temporary name beside OUT and renamed when complete, so a killed backup
never leaves a half file at OUT. Restore writes the data files first and the database last, each atomically.

PostgreSQL's database is dumped with `pg_dump` (the recipe in docs/deployment.md); `--files-only` backs up and
restores the data files alone for it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from sqlalchemy.engine import make_url

from app.errors import Conflict, InvalidInput, NotFound, Unsupported

FORMAT = 1
DB_MEMBER = "medview.db"
MANIFEST = "manifest.json"
DATA_FOLDERS = ("masks", "models", "predictions", "embeddings")  # under the data dir; costly or impossible to derive
DATA_FILES = ("secret_key",)
SECRET_MODE = 0o600


@dataclass
class BackupReport:
    path: Path
    database_bytes: int = 0
    files: int = 0
    file_bytes: int = 0
    revision: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def sqlite_path(database_url: str) -> Path:
    """The file of a SQLite URL; Unsupported for any other database (PostgreSQL goes through pg_dump)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise Unsupported(f"{url.get_backend_name()} databases are backed up with their own tools: for PostgreSQL "
                          "run pg_dump --format=custom, and `medview backup --files-only OUT` for the data files "
                          "(docs/deployment.md, \"Backup and restore\")")
    if not url.database or url.database == ":memory:":
        raise InvalidInput("an in-memory SQLite database has nothing to back up or restore")
    return Path(url.database).expanduser().resolve()


# -- backup ---------------------------------------------------------------------------------------------------

def backup(database_url: str, data_dir: Path, out: Path, *, force: bool = False, files_only: bool = False
           ) -> BackupReport:
    """Write the backup tar to `out` (refusing an existing file unless `force`); see the module docstring."""
    started = time.monotonic()
    out = Path(out).expanduser().absolute()
    source = None if files_only else sqlite_path(database_url)
    if source is not None and not source.is_file():
        raise NotFound(f"database file {source} does not exist")
    if out.is_dir():
        raise InvalidInput(f"{out} is a folder; give the backup's file name, e.g. {out / 'medview-backup.tar'}")
    if out.exists() and not force:
        raise Conflict(f"{out} exists; choose another name or pass --force to replace it")
    if not out.parent.is_dir():
        raise NotFound(f"folder {out.parent} does not exist")
    report = BackupReport(path=out)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        manifest: dict[str, object] = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "data_dir": str(Path(data_dir).resolve()), "database": None}
        tar_path = work / "backup.tar"
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            if source is not None:
                copy = work / DB_MEMBER
                online_copy(source, copy)
                check_integrity(copy)
                report.revision, report.counts = describe(copy)
                report.database_bytes = copy.stat().st_size
                manifest["database"] = {"revision": report.revision, "counts": report.counts}
                tar.add(copy, arcname=DB_MEMBER, recursive=False)
            for path, arcname in data_files(Path(data_dir)):
                try:
                    info = tar.gettarinfo(path, arcname=arcname)
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                except FileNotFoundError:  # removed since it was listed (a model deleted meanwhile): not needed
                    continue
                report.files += 1
                report.file_bytes += info.size
            manifest["files"] = report.files
            body = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(body))
        tar_path.chmod(SECRET_MODE)  # it holds password hashes and the session key
        _fsync(tar_path)
        os.replace(tar_path, out)
        _fsync_dir(out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report


def online_copy(source: Path, target: Path) -> None:
    """SQLite's online backup API, in one step (see the module docstring), into a self-contained file."""
    src = sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
    finally:
        dst.close()
        src.close()


def check_integrity(path: Path) -> None:
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path.name} is not a readable SQLite database: {exc}") from None
    finally:
        conn.close()
    if rows != ["ok"]:
        raise InvalidInput(f"{path.name} failed PRAGMA integrity_check: {'; '.join(map(str, rows[:5]))}")


def describe(path: Path) -> tuple[str | None, dict[str, int]]:
    """The Alembic revision and the row count of every table of a SQLite file."""
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        counts = {t: int(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
        revision = None
        if "alembic_version" in tables:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
    finally:
        conn.close()
    return revision, counts


def data_files(data_dir: Path) -> Iterator[tuple[Path, str]]:
    """(file, name in the tar) for the data dir's files that belong in a backup: regular files only (no links),
    no dot-files (writers' temporary files and half-registered models are dot-named)."""
    for name in DATA_FILES:
        path = data_dir / name
        if path.is_file() and not path.is_symlink():
            yield path, f"data/{name}"
    for folder in DATA_FOLDERS:
        top = data_dir / folder
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.startswith(".") or path.is_symlink() or not path.is_file():
                    continue
                yield path, f"data/{path.relative_to(data_dir).as_posix()}"


# -- restore --------------------------------------------------------------------------------------------------

@dataclass
class RestoreReport:
    database: Path | None = None
    files: int = 0
    revision: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def restore(backup_file: Path, database_url: str, data_dir: Path, *, force: bool = False) -> RestoreReport:
    """Put a backup back: the data files under `data_dir`, then the database at the SQLite path of `database_url`
    (refused when a database is there unless `force`). The server must be stopped (or point at a new path)."""
    backup_file = Path(backup_file).expanduser()
    if not backup_file.is_file():
        raise NotFound(f"backup file {backup_file} does not exist")
    data_dir = Path(data_dir).resolve()
    report = RestoreReport()
    try:
        tar = _open_tar(backup_file)
    except (tarfile.TarError, OSError) as exc:
        raise InvalidInput(f"{backup_file} is not a MedView backup (not a tar file: {exc})") from None
    with tar:
        try:
            _restore_from(tar, backup_file, database_url, data_dir, force, report)
        except (tarfile.TarError, EOFError) as exc:  # cut short or damaged: found before the database is touched
            raise InvalidInput(f"{backup_file} is damaged ({exc}); the database was not restored") from None
    return report


def _open_tar(path: Path) -> tarfile.TarFile:
    return tarfile.open(path, "r:")


def _restore_from(tar: tarfile.TarFile, backup_file: Path, database_url: str, data_dir: Path, force: bool,
                  report: RestoreReport) -> None:
    members = {m.name: m for m in tar.getmembers()}
    manifest = _manifest(tar, members, backup_file)
    target = sqlite_path(database_url) if DB_MEMBER in members else None
    if target is not None and _database_present(target) and not force:
        raise Conflict(f"a database exists at {target}; stop the server and pass --force to replace it, "
                       "or restore to a new MEDVIEW_DATABASE_URL")
    for name, member in members.items():
        if name in (DB_MEMBER, MANIFEST):
            continue
        _data_member(name, member, backup_file)  # every member checked before anything is written
    for name, member in members.items():
        if name in (DB_MEMBER, MANIFEST):
            continue
        relative = _data_member(name, member, backup_file)
        _extract_atomically(tar, member, data_dir / relative, SECRET_MODE if relative == "secret_key" else 0o644)
        report.files += 1
    if target is None:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staged_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".restore", dir=target.parent)
    os.close(fd)
    staged = Path(staged_name)
    try:
        _extract_to(tar, members[DB_MEMBER], staged)
        check_integrity(staged)
        _repoint_models(staged, str(manifest.get("data_dir") or ""), data_dir)
        report.revision, report.counts = describe(staged)
        _fsync(staged)
        for suffix in ("-wal", "-shm", "-journal"):  # another database's log must not be replayed onto it
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(staged, target)
        _fsync_dir(target.parent)
    finally:
        staged.unlink(missing_ok=True)
    report.database = target


def _manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], source: Path) -> dict[str, object]:
    member = members.get(MANIFEST)
    fh = tar.extractfile(member) if member is not None and member.isfile() else None
    if fh is None:
        raise InvalidInput(f"{source} is not a MedView backup: it has no {MANIFEST}")
    try:
        manifest = json.loads(fh.read(1 << 20))
    except ValueError as exc:
        raise InvalidInput(f"{source}: {MANIFEST} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{source}: backup format {manifest.get('format') if isinstance(manifest, dict) else '?'}"
                           f" is not {FORMAT}, the one this version reads")
    return manifest


def _data_member(name: str, member: tarfile.TarInfo, source: Path) -> str:
    """The data-dir path of a tar member, refusing anything but a regular file in the backed-up places."""
    parts = PurePosixPath(name).parts
    relative = "/".join(parts[1:])
    allowed = (len(parts) == 2 and parts[1] in DATA_FILES) or (len(parts) >= 3 and parts[1] in DATA_FOLDERS)
    if (not member.isfile() or parts[:1] != ("data",) or not allowed or ".." in parts
            or any(p.startswith(".") for p in parts)):
        raise InvalidInput(f"{source}: member {name!r} is not a file a MedView backup holds; nothing was restored "
                           "from it")
    return relative


def _extract_to(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    fh = tar.extractfile(member)
    if fh is None:
        raise InvalidInput(f"member {member.name!r} has no content")
    with fh, path.open("wb") as out:
        shutil.copyfileobj(fh, out, 1 << 20)


def _extract_atomically(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".restore", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _extract_to(tar, member, tmp)
        tmp.chmod(mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _repoint_models(db: Path, old_data_dir: str, new_data_dir: Path) -> None:
    """Registered models name their file as `<data dir>/models/<id>/<file>`: point those at the new data dir."""
    if old_data_dir and Path(old_data_dir) == new_data_dir:
        return
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "models" not in tables:
            return
        for model_id, path in conn.execute("SELECT id, path FROM models").fetchall():
            parts = Path(str(path)).parts
            if len(parts) >= 3 and parts[-3] == "models" and parts[-2] == str(model_id):
                conn.execute("UPDATE models SET path = ? WHERE id = ?",
                             (str(new_data_dir / "models" / str(model_id) / parts[-1]), model_id))
        conn.commit()
    finally:
        conn.close()


def _database_present(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
