"""Every ``# type: ignore`` in unidesk/ names its error code and says why, after it on the same
line: ``# type: ignore[code]  # why``."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "unidesk"
IGNORE = re.compile(r"#\s*type:\s*ignore\b")
EXPLAINED = re.compile(r"#\s*type:\s*ignore\[[\w\-, ]+\]\s+#\s*\S")


def unexplained(source: str) -> list[int]:
    """Line numbers of ``type: ignore`` comments without an error code and a reason."""
    return [
        tok.start[0]
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
        and IGNORE.search(tok.string)
        and not EXPLAINED.search(tok.string)
    ]


def test_the_check_tells_explained_from_bare() -> None:
    source = (
        "a = 1  # type: ignore\n"
        "b = 2  # type: ignore[assignment]\n"
        "c = 3  # type: ignore[assignment]  # aiodocker's stubs are wrong here\n"
        "d = '# type: ignore'\n"
    )
    assert unexplained(source) == [1, 2]


def test_every_type_ignore_in_unidesk_says_why() -> None:
    bare = [
        f"{path.relative_to(ROOT.parent)}:{line}"
        for path in sorted(ROOT.rglob("*.py"))
        for line in unexplained(path.read_text())
    ]
    assert not bare, "write `# type: ignore[code]  # why` (or fix the type): " + ", ".join(bare)
