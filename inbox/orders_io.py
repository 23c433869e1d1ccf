"""`inbox orders import FILE`: orders from CSV, JSON (a list) or JSON Lines.

Every bad record is reported on stderr with the line it starts on, the good ones are
imported anyway, and the exit code is 1 when any record was bad (0 otherwise).

CSV columns: external_id, number, placed_at, status, financial_status,
fulfillment_status, currency, total, items, tracking_number, tracking_url,
customer_name, customer_email, customer_phone. `items` is a JSON list, or
`2x Blue mug @ 12.50 | 1x Jacket` (quantity, name, optional unit price).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inbox.errors import BadInput
from inbox.orders import parse_order, upsert_order
from inbox.runtime import Runtime

_ITEM = re.compile(r"^\s*(?:(\d+)\s*[x×]\s*)?(.+?)(?:\s*@\s*([0-9.,]+))?\s*$")


def _csv_items(raw: str) -> list[dict[str, Any]] | Any:
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadInput(f"items is not valid JSON: {exc.msg}") from None
    items = []
    for part in raw.split("|"):
        match = _ITEM.match(part)
        if not match or not match.group(2).strip():
            raise BadInput(f"cannot read item {part.strip()!r} (expected like '2x Blue mug @ 12.50')")
        qty, name, price = match.groups()
        items.append({"name": name.strip(), "quantity": int(qty or 1),
                      "price": price.replace(",", ".") if price else None})
    return items


def _csv_records(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "external_id" not in [f.strip() for f in reader.fieldnames]:
        raise BadInput('the CSV header needs at least an "external_id" column')
    start = 2  # line 1 is the header
    for row in reader:
        record: dict[str, Any] = {(k or "").strip(): (v or "").strip() for k, v in row.items()
                                  if k is not None}
        if None in row:
            yield start, BadInput(f"{len(row[None])} more fields than the header has")
        else:
            try:
                record["items"] = _csv_items(record.get("items", ""))
                yield start, record
            except BadInput as exc:
                yield start, exc
        start = reader.line_num + 1


def _json_records(text: str) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON list (or JSON Lines), each with its starting line."""
    decoder = json.JSONDecoder()
    stripped = text.lstrip()
    if not stripped.startswith("["):
        for number, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except json.JSONDecodeError as exc:
                yield number, BadInput(f"not valid JSON: {exc.msg}")
        return
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise BadInput("the JSON list is not closed with ]")
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            # Without a parseable element we cannot find where the next one starts.
            raise BadInput(f"line {exc.lineno}: not valid JSON ({exc.msg}); stopped reading here") from None
        yield line, value


async def import_file(rt: Runtime, path: str) -> int:
    """Import every good order in `path`; report bad ones by line; 1 if any was bad."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"inbox: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    is_json = path.lower().endswith((".json", ".jsonl", ".ndjson")) or text.lstrip()[:1] in ("[", "{")
    records = _json_records(text) if is_json else _csv_records(text)
    imported = bad = 0
    try:
        for line, record in records:
            try:
                if isinstance(record, BadInput):
                    raise record
                fields = parse_order(record, default_region=rt.settings.default_region)
                fields["source"] = fields["source"] if record.get("source") else "import"
                await upsert_order(rt, fields)
                imported += 1
            except BadInput as exc:
                bad += 1
                print(f"{path}:{line}: {exc.detail}", file=sys.stderr)
    except BadInput as exc:
        bad += 1
        print(f"{path}: {exc.detail}", file=sys.stderr)
    print(f"imported {imported} order{'s' if imported != 1 else ''}"
          + (f"; {bad} bad record{'s' if bad != 1 else ''} skipped" if bad else ""))
    return 1 if bad else 0
