"""The README is executable: its Python examples run, in order, and print exactly what
their result comments say; every ``convnetpy`` command it shows runs (tests/readme_commands.py).

A result comment is the comment on the last line of a statement that prints (up to the first
double space, after which a remark may follow), or the comment lines right below it. A
statement that prints without one fails the test, so no output goes unchecked.
"""

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, source) of each ```python block."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1))
            for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S)]


def expected_output(lines: list[str], stmt: ast.stmt) -> str | None:
    """The result comment of ``stmt`` (see the module docstring), or None."""
    last = lines[stmt.end_lineno - 1]
    comment = re.search(r"#\s?(.*)$", last[stmt.end_col_offset:])
    if comment:
        return comment.group(1).split("  ")[0]
    below = []
    for line in lines[stmt.end_lineno:]:
        if not line.startswith("#"):
            break
        below.append(line[1:].strip())
    return " ".join(below) or None


def squash(text: str) -> str:
    return " ".join(text.split())


def test_expected_output_reads_trailing_and_following_comments():
    src = "print(1)   # 1  (a remark)\nprint('a b')\n# a\n# b\nx = 2  # not output\n"
    lines = src.splitlines()
    got = [expected_output(lines, s) for s in ast.parse(src).body]
    assert got == ["1", "a b", "not output"]


@pytest.mark.slow
def test_readme_python_blocks_print_what_they_say():
    text = README.read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 10
    scope: dict = {}
    checked = 0
    for first, block in blocks:
        lines = block.splitlines()
        for stmt in ast.parse(block).body:
            where = f"README.md line {first + stmt.lineno - 1}"
            out = io.StringIO()
            code = compile(ast.Module([stmt], []), where, "exec")
            with contextlib.redirect_stdout(out):
                exec(code, scope)
            if not out.getvalue():
                continue
            want = expected_output(lines, stmt)
            assert want is not None, f"{where} prints {out.getvalue()!r} with no result comment"
            assert squash(out.getvalue()) == squash(want), where
            checked += 1
    assert checked >= 15


@pytest.mark.slow
def test_readme_commands_all_run(tmp_path):
    """Every ``convnetpy ...`` line of the README's shell blocks, with small settings."""
    from readme_commands import readme_commands, run_all

    commands = readme_commands(README.read_text())
    assert len(commands) >= 30
    failures = run_all(commands, tmp_path)
    assert not failures, "\n".join(failures)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
