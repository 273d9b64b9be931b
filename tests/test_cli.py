import subprocess
import sys

import convnetpy
from convnetpy.cli import main


def test_version_and_help(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert capsys.readouterr().out.strip() == f"convnetpy {convnetpy.__version__}"
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "convnetpy", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("convnetpy ")


def test_demo_learns_the_synthetic_task(capsys):
    assert main(["demo", "--steps", "40"]) == 0
    out = capsys.readouterr().out
    assert "held-out accuracy" in out and "parameters: 19,898" in out


def test_demo_rejects_bad_steps(capsys):
    try:
        main(["demo", "--steps", "0"])
    except SystemExit as e:
        assert e.code == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
