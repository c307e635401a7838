"""Cost of masking secrets in an attempt's log on the node (``AttemptLog`` with a masker).

Feeds MIB of log-like text (lines of 80 characters, a few carrying a secret) through
``AttemptLog.append``/``cut`` in 64 KiB pieces, as the agent does, with 0 (baseline: no masker),
1 and 10 secrets. Prints MB/s for each and the ratio against the baseline measured in the same
run; checks that no value survives.

    .venv/bin/python bench/bench_masking.py [--mib 64]
"""

from __future__ import annotations

import argparse
import random
import string
import time

from unidesk.gateway_agent.logbuffer import AttemptLog
from unidesk.masking import SecretMasker


def _text(mib: int, secrets: list[str]) -> bytes:
    rng = random.Random(1)
    lines = []
    size = 0
    while size < mib * 1024 * 1024:
        line = "".join(rng.choices(string.ascii_letters + string.digits + " ", k=79))
        if secrets and rng.random() < 0.01:
            line = line[:20] + rng.choice(secrets) + line[20:]
        lines.append(line + "\n")
        size += len(line) + 1
    return "".join(lines).encode()


def _run(data: bytes, secrets: list[str]) -> tuple[float, str]:
    log = AttemptLog("t", 1, SecretMasker(secrets) if secrets else None)
    out = []
    started = time.perf_counter()
    for i in range(0, len(data), 64 * 1024):
        log.append("stdout", data[i : i + 64 * 1024])
        out += log.cut()
    out += log.cut(final=True)
    seconds = time.perf_counter() - started
    return len(data) / seconds / 1e6, "".join(c.data for c in out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=64)
    args = p.parse_args()
    rng = random.Random(2)
    pool = [
        "".join(rng.choices(string.ascii_letters + string.digits + "/+=", k=32)) for _ in range(10)
    ]
    data = _text(args.mib, pool)
    base, _ = _run(data, [])
    print(f"{args.mib} MiB of log text, 64 KiB pieces")
    print(f"  no secrets (baseline): {base:8.1f} MB/s")
    for n in (1, 10):
        rate, text = _run(data, pool[:n])
        assert not any(s in text for s in pool[:n]), "a secret survived masking"
        print(f"  {n:2d} secret(s):          {rate:8.1f} MB/s  ratio {rate / base:.2f}")


if __name__ == "__main__":
    main()
