"""`podgate hash-password` as an admin uses it: typed at a terminal, or piped in by a script."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from control.auth import hash_scheme, verify_password

PODGATE = [sys.executable, "-m", "podgate.cli", "hash-password"]


def piped(stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PODGATE, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
    )


def on_a_terminal(answers: list[str], *args: str) -> tuple[int, str, str]:
    """Run it with a pseudo-terminal as stdin and stderr, answering each prompt in turn.

    Returns the exit code, everything the terminal showed, and stdout.
    """
    master, slave = os.openpty()
    process = subprocess.Popen(
        [*PODGATE, *args],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        start_new_session=True,  # no controlling terminal: getpass uses stdin, as a tty
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + 20
    try:
        for asked, answer in enumerate(answers, start=1):
            # getpass flushes typed-ahead input, so answer only once the prompt is shown.
            while shown.count(b"assword: ") < asked:
                assert time.monotonic() < deadline, f"no prompt; terminal showed {shown!r}"
                if select.select([master], [], [], 0.2)[0]:
                    shown += os.read(master, 4096)
            os.write(master, answer.encode() + b"\n")
        stdout, _ = process.communicate(timeout=20)
        while select.select([master], [], [], 0.05)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()
        os.close(master)
    return process.returncode, shown.decode(errors="replace"), stdout.decode()


@pytest.mark.parametrize("scheme", ["scrypt", "bcrypt", "argon2"])
def test_a_piped_password_prints_a_hash_that_verifies(scheme: str) -> None:
    result = piped("tr0ub4dor & 3\n", "--scheme", scheme)
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert result.stdout == hashed + "\n"
    assert hash_scheme(hashed) == scheme
    assert verify_password(hashed, "tr0ub4dor & 3")
    assert not verify_password(hashed, "tr0ub4dor & 3\n")


def test_scrypt_is_the_default() -> None:
    result = piped("pw\n")
    assert result.returncode == 0
    assert result.stdout.startswith("$scrypt$")


def test_spaces_in_a_piped_password_count() -> None:
    result = piped(" padded \n")
    assert verify_password(result.stdout.strip(), " padded ")


@pytest.mark.parametrize("stdin", ["", "\n"])
def test_an_empty_password_is_refused(stdin: str) -> None:
    result = piped(stdin)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "password is empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_password_bcrypt_would_cut_is_refused() -> None:
    result = piped("x" * 80 + "\n", "--scheme", "bcrypt")
    assert result.returncode == 2
    assert "72 bytes" in result.stderr
    assert result.stdout == ""


def test_an_unknown_scheme_is_refused() -> None:
    result = piped("pw\n", "--scheme", "md5")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_typed_twice_at_a_terminal_without_echo() -> None:
    code, shown, stdout = on_a_terminal(["s3cret words", "s3cret words"])
    assert code == 0, shown
    assert "Password: " in shown and "Repeat password: " in shown
    assert "s3cret" not in shown  # never echoed
    assert verify_password(stdout.strip(), "s3cret words")


def test_two_different_passwords_at_a_terminal_hash_nothing() -> None:
    code, shown, stdout = on_a_terminal(["first try", "first tyr"])
    assert code == 2
    assert "differ" in shown
    assert stdout == ""
