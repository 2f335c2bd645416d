"""Read DL_info.csv: one `LesionRow` per lesion, one `Problem` per bad row, never the whole file refused for one row.

What a row must hold is `rows.py`; converting the 32,735 rows a column at a time is `columns.py`. Here is what
concerns the file and rows together:
- a byte that is not UTF-8 makes its row a problem (line, column and the byte), the other rows are read
  (a bad byte in the header is fatal: the columns cannot be known);
- the same lesion listed twice (same File_name and Measurement_coordinates) is indexed once: the repeat is a
  problem naming both lines and, when the copies differ, the fields that differ;
- a patient given different Patient_gender values on different rows is reported (each row is still indexed).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from app.datasets.base import IngestError, Problem
from app.datasets.deeplesion.columns import parse_columns
from app.datasets.deeplesion.rows import COLUMNS, LESION_TYPES, SPLITS, LesionRow, RowInvalid, parse_row

_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # how surrogateescape decoding keeps an undecodable byte


def _not_utf8(cells: list[str], header: list[str]) -> tuple[str, str] | None:
    """(column, what is wrong) for the first cell holding a byte that is not UTF-8, else None."""
    for i, cell in enumerate(cells):
        found = _NOT_UTF8.search(cell)
        if found:
            column = header[i] if i < len(header) else f"column {i + 1} (past the header)"
            byte = ord(found.group()) - 0xDC00
            shown = cell.encode("utf-8", "surrogateescape")
            return column, f"byte 0x{byte:02x} is not UTF-8 text ({shown!r}); the row is skipped"
    return None


def _decode(data: bytes) -> tuple[str, bool]:
    """The file's text (a UTF-8 BOM dropped) and whether some bytes were not UTF-8 (kept as surrogates)."""
    try:
        text, bad = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, bad = data.decode("utf-8", "surrogateescape"), True
    return (text[1:] if text.startswith("\ufeff") else text), bad


def _records(name: str, text: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (blank lines skipped, as csv.DictReader does) and each row's line number."""
    reader = csv.reader(io.StringIO(text, newline=""))
    cells: list[list[str]] = []
    lines: list[int] = []
    try:
        header = next(reader, [])
        if "\r" not in text:  # one row per line (checked below): list() in C, lines counted afterwards
            cells = list(reader)
            if len(cells) + 1 == text.count("\n") + (not text.endswith("\n")) and all(cells):
                return header, cells, list(range(2, len(cells) + 2))
            reader = csv.reader(io.StringIO(text, newline=""))
            header, cells = next(reader, []), []
        for row in reader:
            if row:
                cells.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise IngestError(f"{name}: not a readable CSV file (line {reader.line_num}: {exc})") from None
    return header, cells, lines


def read_dl_info(path: Path) -> tuple[list[LesionRow], list[Problem]]:
    """All valid rows and one Problem per invalid row. Raises IngestError if the file is unusable."""
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{name}: cannot open ({exc.strerror})") from None
    text, has_bad_bytes = _decode(data)
    header, cells, lines = _records(name, text)
    if any(_NOT_UTF8.search(h) for h in header):
        raise IngestError(f"{name}: not a readable CSV file (line 1, the header, is not UTF-8 text)",
                          [Problem(name, "the header is not UTF-8 text", row=1)])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise IngestError(f"{name}: missing column(s) {', '.join(missing)}",
                          [Problem(name, f"missing column(s) {', '.join(missing)}", row=1)])
    problems: list[Problem] = []
    if has_bad_bytes:
        kept = []
        for row, line in zip(cells, lines, strict=True):
            bad = _not_utf8(row, header)
            if bad is None:
                kept.append((row, line))
                continue
            file_name = row[header.index("File_name")].strip() if len(row) > header.index("File_name") else ""
            problems.append(Problem(name, bad[1], row=line, field=bad[0],
                                    item=file_name if file_name and not _NOT_UTF8.search(file_name) else None))
        cells, lines = [r for r, _ in kept], [n for _, n in kept]

    width, unique = len(header), len(set(header)) == len(header)

    def row_dict(i: int) -> dict:
        """Row i as csv.DictReader gave it: None for a missing cell, extra cells as a list under None."""
        row = cells[i]
        out: dict = dict(zip(header, row[:width], strict=False))
        for h in header[len(row):]:
            out[h] = None
        if len(row) > width:
            out[None] = row[width:]
        return out

    if unique and all(len(r) == width for r in cells):
        raws = ["|".join(r) for r in cells]
        rows, invalid = parse_columns(cells, lines, raws, header, row_dict)
    else:  # ragged rows or a repeated column name: row by row, exactly as csv.DictReader reads them
        rows, invalid = _row_by_row(cells, lines, header, row_dict)
    for i, reason in invalid:
        item = (row_dict(i).get("File_name") or "").strip() or None
        problems.append(Problem(name, reason.message, row=lines[i], field=reason.field, item=item))
    rows = _without_repeats(name, rows, problems)
    problems.sort(key=lambda p: p.row or 0)
    return rows, problems


def _row_by_row(cells, lines, header, row_dict) -> tuple[list[LesionRow], list[tuple[int, RowInvalid]]]:
    rows: list[LesionRow] = []
    invalid: list[tuple[int, RowInvalid]] = []
    for i in range(len(cells)):
        try:
            rows.append(parse_row(row_dict(i), lines[i]))
        except RowInvalid as exc:
            invalid.append((i, exc))
    return rows, invalid


_FIELDS = dict(zip(COLUMNS, (  # each column's value in a LesionRow
    "file_name", "patient", "study", "series", "key_slice", "coords", "bbox", "diameters_px", "location",
    "lesion_type", "noisy", "slice_range", "spacing", "image_size", "window", "sex", "age", "split"), strict=True))


def _differing(first: LesionRow, again: LesionRow) -> list[tuple[str, object, object]]:
    """(column, first value, repeated value) for each column whose values differ between two rows."""
    return [(c, a, b) for c, f in _FIELDS.items() if (a := getattr(first, f)) != (b := getattr(again, f))]


def _without_repeats(name: str, rows: list[LesionRow], problems: list[Problem]) -> list[LesionRow]:
    """Rows with each lesion once (the first listing kept); a problem per repeat and per conflicting sex."""
    seen: dict[tuple, LesionRow] = {}
    sexes: dict[int, LesionRow] = {}
    kept: list[LesionRow] = []
    for row in rows:
        lesion = (row.file_name, row.coords)
        first = seen.get(lesion)
        if first is not None:
            differ = _differing(first, row)
            field = differ[0][0] if differ else None
            if not differ:
                how = "exactly" if first.raw == row.raw else "with the same values"
                message = f"repeats line {first.line} {how}; the lesion is indexed once (line {first.line})"
            else:
                shown = "; ".join(f"{c}: {a!r} on line {first.line}, {b!r} here" for c, a, b in differ)
                message = (f"the same lesion as line {first.line} (same File_name and Measurement_coordinates) "
                           f"but {'a different value' if len(differ) == 1 else 'different values'} ({shown}); "
                           f"only line {first.line} is indexed")
            problems.append(Problem(name, message, row=row.line, field=field, item=row.file_name))
            continue
        seen[lesion] = row
        kept.append(row)
        if row.sex is not None:
            other = sexes.setdefault(row.patient, row)
            if other.sex != row.sex:
                problems.append(Problem(
                    name, f"patient {row.patient:06d} is {other.sex!r} on line {other.line} but {row.sex!r} here",
                    row=row.line, field="Patient_gender", item=row.file_name))
    return kept


__all__ = ["COLUMNS", "LESION_TYPES", "SPLITS", "LesionRow", "read_dl_info"]
