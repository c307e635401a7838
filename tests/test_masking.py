"""Masking of secret values and their encodings, whole and split across chunks."""

from __future__ import annotations

import base64
import random
from urllib.parse import quote, quote_plus

from unidesk.masking import MASK, SecretMasker

SECRET = "s3cr3t/Value+with=signs&more"


def _forms(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw + b"\n").decode(),
        base64.b64encode(b"prefix:" + raw).decode(),
        base64.b64encode(b"xy" + raw + b"tail").decode(),
        quote(value, safe=""),
        quote_plus(value),
    ]


def test_every_form_is_masked() -> None:
    m = SecretMasker([SECRET])
    for form in _forms(SECRET):
        text = f"before {form} after"
        assert SECRET not in m.mask(text)
        masked = m.mask(text)
        assert MASK in masked, form
        # Nothing long enough to rebuild the value survives from the encoded form.
        assert form not in masked


def test_multiline_keys_are_masked_line_by_line() -> None:
    key = (
        "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n"
        "Qm9vbGVhbiBrZXkgbGluZQ==\n-----END KEY-----\n"
    )
    m = SecretMasker([key])
    out = m.mask("cat key:\r\n" + key.replace("\n", "\r\n"))
    assert "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7" not in out and "Qm9vbGVhbiBrZXkgbGluZQ==" not in out


def test_short_values_are_not_masked() -> None:
    assert not SecretMasker(["abc"])
    assert SecretMasker(["abc"]).mask("abcabc") == "abcabc"


def test_values_split_across_chunks_are_masked() -> None:
    m = SecretMasker([SECRET, "another-token-123"])
    text = "".join(f"line {i}: {f} and another-token-123\n" for i, f in enumerate(_forms(SECRET)))
    rng = random.Random(7)
    for _ in range(50):
        stream = m.stream()
        out, pos = [], 0
        while pos < len(text):
            step = rng.randint(1, 9)
            out.append(stream.feed(text[pos : pos + step]))
            pos += step
        out.append(stream.flush())
        joined = "".join(out)
        assert joined == m.mask(text)
        assert SECRET not in joined and "another-token-123" not in joined


def test_only_a_possible_start_of_a_value_is_held_back() -> None:
    stream = SecretMasker([SECRET]).stream()
    assert stream.feed("progress 10%\n") == "progress 10%\n"  # nothing delayed
    assert stream.feed("token: s3cr") == "token: "  # could be the start of the value
    assert stream.feed("3t/Value+with=signs&more!\n") == "***!\n"
    assert stream.feed("s3") == ""
    assert stream.flush() == "s3"


def test_a_real_ssh_key_is_masked(tmp_path) -> None:
    """Long multi-line values (an OpenSSH private key) compile and mask, whole and per line."""
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(tmp_path / "k")],
        check=True,
    )
    key = (tmp_path / "k").read_text()
    m = SecretMasker([key])
    assert m.mask("key:\n" + key) == "key:\n***"
    stream = m.stream()
    out = "".join(stream.feed(key[i : i + 100]) for i in range(0, len(key), 100)) + stream.flush()
    assert out == "***"
    assert key.splitlines()[5] not in m.mask("\n".join(key.splitlines()[3:8]))
