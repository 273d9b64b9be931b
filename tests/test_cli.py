import subprocess
import sys

import pytest

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


@pytest.mark.slow
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


def test_calc_conv_prints_the_arithmetic(capsys):
    assert main(["calc", "conv", "--input", "32x32x3", "--filters", "10", "--kernel", "5",
                 "--stride", "1", "--pad", "2"]) == 0
    out = capsys.readouterr().out
    assert "output volume: 32x32x10" in out
    assert "(F*F*D1 + 1)*K = (5*5*3 + 1)*10 = 760" in out


def test_calc_reports_settings_that_do_not_fit(capsys):
    assert main(["calc", "conv", "--input", "7x7x3", "--filters", "4", "--kernel", "3",
                 "--stride", "3"]) == 1
    out = capsys.readouterr().out
    assert "(7 - 3 + 2*0)/3 + 1 = 4/3 + 1 = 7/3 = 2.33: does not fit" in out
    assert main(["calc", "pool", "--input", "10x10x8", "--kernel", "3", "--stride", "2"]) == 1
    assert "= 9/2 = 4.5: does not fit" in capsys.readouterr().out


def test_calc_alexnet_conv1_and_pool(capsys):
    assert main(["calc", "conv", "--input", "227x227x3", "--filters", "96", "--kernel", "11",
                 "--stride", "4"]) == 0
    out = capsys.readouterr().out
    assert "output volume: 55x55x96" in out and "= 34,944" in out
    assert main(["calc", "pool", "--input", "224x224x64", "--kernel", "2"]) == 0
    out = capsys.readouterr().out
    assert "output volume: 112x112x64" in out and "parameters: 0" in out


def test_calc_bad_input(capsys):
    assert main(["calc", "conv", "--input", "32x32", "--filters", "1", "--kernel", "3"]) == 2
    assert "expected a volume like 32x32x3" in capsys.readouterr().err


def test_summary_command_zoo_and_file(tmp_path, capsys):
    assert main(["summary", "resnet20", "--batch", "8", "--format", "json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["total_params"] == 269_722 and data["input_size"] == [8, 3, 32, 32]
    f = tmp_path / "mynet.py"
    f.write_text("from convnetpy import nn\n"
                 "def build(num_classes=10):\n"
                 "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(),\n"
                 "                         nn.Linear(4 * 26 * 26, num_classes))\n")
    assert main(["summary", f"{f}:build", "--input", "1x28x28", "--format", "md"]) == 0
    assert "| `(model)` | Sequential" in capsys.readouterr().out
    assert main(["summary", f"{f}:build", "--input", "1x30x30"]) == 2
    assert "use in_features=3136" in capsys.readouterr().err
    assert main(["summary", "nosuchnet"]) == 2
    assert "unknown model 'nosuchnet'" in capsys.readouterr().err
    assert main(["summary", f"{f}:build"]) == 2
    assert "--input CxHxW is required" in capsys.readouterr().err


def test_models_command(capsys):
    assert main(["models"]) == 0
    assert "resnet20" in capsys.readouterr().out
