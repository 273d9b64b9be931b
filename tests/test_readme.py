"""The README's Python examples run, in order, and print what their comments say."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(README), "exec"), scope)
    text = out.getvalue()
    assert "tensor([[2., 4.]," in text
    assert "22466" in text
    assert "(2, 32, 16, 16)" in text and "['conv1.weight', 'bn1.weight', 'bn1.bias']" in text
    assert "If it follows a Flatten, the flattened size is 4096: use in_features=4096." in text
