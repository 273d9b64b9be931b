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
    assert "61100840 714188480" in text and "(11, 11) 70470400" in text
    assert "H: (224 + 2*2 - 11)/4 + 1 = 55.25 -> 55" in text
    assert "14.5 is not an integer; the last 1 row of the input is dropped" in text
    assert "(2, 32, 16, 16)" in text and "['conv1.weight', 'bn1.weight', 'bn1.bias']" in text
    assert "If it follows a Flatten, the flattened size is 4096: use in_features=4096." in text
    assert "55 34944 (2, 2)\n" in text  # convnetpy.shape
    assert "loss below threshold True\n" in text  # a user's callback stopped fit
    assert "\nTrue\n" in text  # the custom Function passed gradcheck
    assert "1 4 (64, 3, 32, 32)\n[1. 1.]\n" in text  # data-parallel API, one process
