"""`inbox faq import FILE` and `inbox faq export [--format json|csv]`.

Files (DESIGN.md contract): JSON, a list of ``{"question", "alternates": [...],
"answer", "tags": [...]}`` with an optional ``"id"`` kept as the entry's external id;
or CSV with columns ``question``, ``alternates`` (separated by ``|``), ``answer``,
``tags`` (also ``|``; commas work too). Optional fields/columns: ``id``,
``answer_fallback``, ``channels``, ``enabled``.

Import upserts: by external id when the item has one, else by identical question. Each
bad item is reported on stderr with its line (CSV) or item number (JSON), the rest is
imported, and the exit code is 1 when anything was bad.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from faq import store
from faq.entries import entry_export, validate_entry
from faq.service import service_for
from inbox.errors import InboxError
from inbox.runtime import Runtime

CSV_COLUMNS = ("id", "question", "alternates", "answer", "tags", "answer_fallback", "channels",
               "enabled")
_REQUIRED_COLUMNS = ("question", "answer")

Item = tuple[str, dict[str, Any]]  # (where: "line 7" / "item 3", raw fields)


def _split(value: str | None, *, commas: bool = False) -> list[str]:
    if not value:
        return []
    sep = "|" if "|" in value or not commas else ","
    return [part.strip() for part in value.split(sep) if part.strip()]


def _from_csv(text: str) -> tuple[list[Item], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in _REQUIRED_COLUMNS if c not in header]
    if missing:
        return [], [f"line 1: the header lacks column {', '.join(missing)} "
                    f"(expected {', '.join(CSV_COLUMNS[1:5])})"]
    reader.fieldnames = header
    items: list[Item] = []
    problems: list[str] = []
    start = 2
    for row in reader:
        where = f"line {start}"
        start = reader.line_num + 1
        if None in row:
            problems.append(f"{where}: more fields than columns")
            continue
        if not any((v or "").strip() for v in row.values()):
            continue  # blank line
        data: dict[str, Any] = {
            "question": row.get("question") or "",
            "answer": row.get("answer") or "",
            "alternates": _split(row.get("alternates")),
            "tags": _split(row.get("tags"), commas=True),
        }
        if row.get("id"):
            data["external_id"] = row["id"]
        if row.get("answer_fallback"):
            data["answer_fallback"] = row["answer_fallback"]
        if row.get("channels"):
            data["channels"] = _split(row["channels"], commas=True)
        if (row.get("enabled") or "").strip():
            data["enabled"] = row["enabled"].strip().lower() not in ("0", "false", "no", "off")
        items.append((where, data))
    return items, problems


def _from_json(text: str) -> tuple[list[Item], list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [f"line {exc.lineno}: not valid JSON ({exc.msg})"]
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if not isinstance(data, list):
        return [], ["the file must hold a JSON list of entries"]
    items: list[Item] = []
    problems: list[str] = []
    for number, raw in enumerate(data, start=1):
        where = f"item {number}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: not an object")
            continue
        fields = dict(raw)
        if "id" in fields:
            external = fields.pop("id")
            if external is not None:
                fields["external_id"] = str(external)
        items.append((where, fields))
    return items, problems


def read_items(path: Path) -> tuple[list[Item], list[str]]:
    """The entries in a JSON or CSV file (by extension, else by content), with the
    problems found while reading it."""
    text = path.read_text(encoding="utf-8-sig")
    is_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith(("[", "{")))
    return _from_json(text) if is_json else _from_csv(text)


def _wording(reason: str) -> str:
    field, _, what = reason.partition(": ")
    return f"missing {field}" if what == "required" else reason


async def import_items(rt: Runtime, items: list[Item]) -> tuple[int, int, list[str]]:
    """Validate and upsert `items`; (created, updated, problems). Good items are stored
    even when others are bad."""
    problems: list[str] = []
    batch: list[tuple[str, dict[str, Any]]] = []
    for where, raw in items:
        try:
            batch.append((where, validate_entry(raw)))
        except InboxError as exc:
            reasons = exc.extra.get("reasons") or [exc.detail]
            problems.append(f"{where}: {'; '.join(_wording(r) for r in reasons)}")
    created, updated, refused = await service_for(rt).save_many(rt, batch)
    return created, updated, problems + refused


async def import_file(rt: Runtime, args: Any, *, out: TextIO | None = None,
                      err: TextIO | None = None) -> int:
    """`inbox faq import FILE`: 0 when every entry was imported, 1 when some were bad
    (reported on stderr, the rest imported), 2 when the file cannot be read."""
    out, err = out or sys.stdout, err or sys.stderr
    path = Path(args.file)
    try:
        items, problems = read_items(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"inbox faq import: cannot read {path}: {exc}", file=err)
        return 2
    created, updated, bad = await import_items(rt, items)
    problems.extend(bad)
    for problem in sorted(problems, key=_order):
        print(problem, file=err)
    print(f"imported {created + updated} entries ({created} new, {updated} updated)"
          + (f"; {len(problems)} skipped" if problems else ""), file=out)
    return 1 if problems else 0


def _order(problem: str) -> tuple[int, str]:
    head = problem.split(":", 1)[0].split()
    return (int(head[1]) if len(head) == 2 and head[1].isdigit() else 0, problem)


async def export(rt: Runtime, args: Any, *, out: TextIO | None = None) -> int:
    """`inbox faq export`: every entry as JSON (or CSV with `--format csv`), in the
    format `import` reads back."""
    out = out or sys.stdout
    async with rt.sessions() as session:
        entries = await store.list_entries(session)
    rows = [entry_export(e) for e in entries]
    if getattr(args, "format", "json") == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({
                "id": row.get("id", ""), "question": row["question"],
                "alternates": "|".join(row["alternates"]), "answer": row["answer"],
                "tags": "|".join(row["tags"]), "answer_fallback": row.get("answer_fallback", ""),
                "channels": "|".join(row.get("channels", [])),
                "enabled": "" if row.get("enabled", True) else "false",
            })
    else:
        json.dump(rows, out, ensure_ascii=False, indent=2)
        out.write("\n")
    return 0
