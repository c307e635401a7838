"""The time policy, enforced by grep: only web/src/time.ts formats dates or converts
datetime-local values."""

from __future__ import annotations

import re
from pathlib import Path

__all__: list[str] = []

WEB_SRC = Path(__file__).resolve().parents[2] / "web" / "src"
ALLOWED = {WEB_SRC / "time.ts"}

# Anything that turns an instant into text, or reads local-zone calendar fields.
FORBIDDEN = re.compile(
    r"""
      \.toLocale(?:String|DateString|TimeString)\s*\(
    | \.to(?:ISO|UTC|GMT|Date|Time)String\s*\(
    | \.toJSON\s*\(
    | Intl\s*\.\s*(?:DateTimeFormat|RelativeTimeFormat)
    | \.(?:get|set)(?:UTC)?(?:FullYear|Month|Date|Day|Hours|Minutes|Seconds|Milliseconds)\s*\(
    | \.getTimezoneOffset\s*\(
    | \bDate\.parse\s*\(
    | \bnew\s+Date\s*\(
    | from\s+["'](?:dayjs|moment|date-fns|luxon)
    """,
    re.VERBOSE,
)


def _sources() -> list[Path]:
    return sorted(
        p
        for p in WEB_SRC.rglob("*")
        if p.suffix in {".ts", ".tsx"} and not p.name.endswith(".test.ts")
    )


def _violations(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        if path in ALLOWED:
            continue
        text = path.read_text(encoding="utf-8")
        if "datetime-local" in text and not (
            "datetimeLocalToIso" in text and "isoToDatetimeLocal" in text
        ):
            found.append(
                f"{path}: a datetime-local input not converted with time.ts "
                "(datetimeLocalToIso/isoToDatetimeLocal)"
            )
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                found.append(f"{path}:{no}: {line.strip()}")
    return found


def test_web_sources_exist() -> None:
    files = _sources()
    assert WEB_SRC / "time.ts" in files
    assert len(files) > 10, files


def test_no_date_formatting_outside_time_ts() -> None:
    problems = _violations(_sources())
    assert not problems, "date formatting must go through web/src/time.ts:\n" + "\n".join(problems)


def test_the_check_catches_formatting(tmp_path: Path) -> None:
    bad = tmp_path / "Bad.tsx"
    bad.write_text(
        "const a = d.toLocaleString();\nconst b = new Intl.DateTimeFormat('en');\nconst c = "
        "x.getHours();\n"
        'const e = new Date(ts);\nconst f = d.toISOString();\n<input type="datetime-local" '
        "/>\nconst ok = Date.now();\n"
    )
    assert len(_violations([bad])) == 6  # five calls, plus the unconverted datetime-local input


def test_time_ts_is_the_module_that_formats() -> None:
    text = (WEB_SRC / "time.ts").read_text(encoding="utf-8")
    for name in (
        "formatDateTime",
        "formatRelative",
        "axisTicks",
        "datetimeLocalToIso",
        "isoToDatetimeLocal",
        "fileStamp",
    ):
        assert f"export function {name}" in text, name
