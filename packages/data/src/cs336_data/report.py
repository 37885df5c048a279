"""The run report: a JSON file, a printed table, and the removed-document samples."""

from __future__ import annotations

import json
from pathlib import Path

from cs336_common.io import atomic_path, write_text_atomic
from cs336_data.stats import StageStats


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def table(stats: dict[str, StageStats]) -> str:
    rows = [("stage", "docs in", "docs out", "kept", "bytes in", "bytes out", "removed by rule")]
    for name, st in stats.items():
        kept = f"{st.docs_out / st.docs_in:.1%}" if st.docs_in else "-"
        rules = ", ".join(f"{r} {n}" for r, n in st.removed.most_common()) or "-"
        rows.append((name, str(st.docs_in), str(st.docs_out), kept, _size(st.bytes_in),
                     _size(st.bytes_out), rules))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:-1], widths[1:], strict=True)
        ]
        lines.append("  ".join([*cells, r[-1]]))
    lines.insert(1, "-" * len(lines[0]))
    langs = next((st.languages for st in stats.values() if st.languages), None)
    if langs:
        total = sum(langs.values())
        top = ", ".join(f"{k} {v / total:.1%}" for k, v in langs.most_common(10))
        lines.append(f"languages (of {total} documents identified): {top}")
    return "\n".join(lines)


def write_report(out_dir: Path, stats: dict[str, StageStats], extra: dict | None = None) -> Path:
    """report.json (counts per stage) and removed_samples.jsonl (per stage and rule)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"stages": {}, **(extra or {})}
    for name, st in stats.items():
        d = st.to_json()
        d.pop("samples")
        report["stages"][name] = d
    path = out_dir / "report.json"
    write_text_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    with atomic_path(out_dir / "removed_samples.jsonl") as tmp, open(tmp, "w") as f:
        for name, st in stats.items():
            for rule, samples in st.samples.items():
                for s in samples:
                    f.write(
                        json.dumps({"stage": name, "rule": rule, **s}, ensure_ascii=False) + "\n"
                    )
    return path
