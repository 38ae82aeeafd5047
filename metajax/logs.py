"""Host-side metric logs: CSV and JSONL always, one row per meta-iteration."""
from __future__ import annotations

import csv
import json
import os


class MetricsLog:
    """Appends rows to ``<dir>/metrics.csv`` and ``<dir>/metrics.jsonl``.

    ``truncate_after(step)`` drops rows past a checkpoint (used on resume) by rewriting each file
    to a temporary name and renaming it over the old one, so an interrupted rewrite loses nothing.
    """

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.csv_path = os.path.join(directory, "metrics.csv")
        self.jsonl_path = os.path.join(directory, "metrics.jsonl")

    def read(self) -> list[dict]:
        """The logged rows. A last line cut off by a crash mid-write (no newline, not valid JSON)
        is skipped: its rows were never checkpointed. Any other bad line raises a ValueError."""
        if not os.path.exists(self.jsonl_path):
            return []
        with open(self.jsonl_path) as f:
            lines = f.readlines()
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                if number == len(lines) and not line.endswith("\n"):
                    break
                raise ValueError(f"{self.jsonl_path}, line {number}: not a JSON row ({error})") from None
        return rows

    def truncate_after(self, step: int) -> None:
        kept = [row for row in self.read() if row["iteration"] <= step]
        atomic_write(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in kept))
        atomic_write(self.csv_path, _csv_text(kept))

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        with open(self.jsonl_path, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        header = _csv_header(self.csv_path)
        if header is not None and not set(rows[0]) <= set(header):
            # new columns (e.g. resuming a run logged by an older version): rewrite with all of them
            atomic_write(self.csv_path, _csv_text(self.read()))
            return
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header or list(rows[0]), restval="")
            if header is None:
                writer.writeheader()
            writer.writerows(rows)


def _csv_header(path: str) -> list[str] | None:
    """The column names of an existing CSV file, or None when it is missing or empty."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f))


def _csv_text(rows: list[dict]) -> str:
    """CSV of ``rows`` with every column any row has (in first-seen order; missing cells empty)."""
    if not rows:
        return ""
    import io

    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def atomic_write(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: no reader sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
