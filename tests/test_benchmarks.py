"""The benchmark scripts run (a smoke test: timings are never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_worker_reports_every_case():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "worker.py"), "convnetpy",
                          "--reps", "1"], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    assert len(res) == 14 and all(len(v) == 1 and v[0] > 0 for v in res.values())
    assert "conv 64->256 1x1 @16 fwd+bwd" in res


def test_table_renders_a_report():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import table

    report = {"machine": {"cpu": "x", "cores": 2, "threads": 2, "python": "3", "numpy": "2",
                          "torch": "2.13", "OPENBLAS_CORETYPE": "Haswell"},
              "date": "today", "rounds": 3, "reps": 5,
              "layers": [{"case": "relu", "convnetpy_ms": 2.0, "torch_ms": 1.0,
                          "convnetpy_gflops": None, "torch_gflops": None, "speed": 0.5}],
              "training": [{"net": "convnetjs", "convnetpy_train_img_s": 100,
                            "torch_train_img_s": 200, "convnetpy_infer_img_s": 300,
                            "torch_infer_img_s": 600, "convnetpy_peak_rss_mib": 100,
                            "torch_peak_rss_mib": 300, "convnetpy_load_train_img_s": 60,
                            "torch_load_train_img_s": 150}],
              "time_to_accuracy": {"runs": [
                  {"preset": "cifar10-fast", "seed": 1, "target": 0.94, "wall_s": 3900,
                   "changes": ["init=default", "label_smoothing=0"],
                   "epochs": 2, "final_val_acc": 0.9312, "final_val_acc_tta": 0.9405,
                   "tta": "flip-translate", "reached_at_epoch": None, "reached_after_s": None,
                   "curve": [{"val_acc": 0.8}, {"val_acc": 0.9312}]},
                  {"preset": "cifar10-quick", "seed": 0, "target": 0.8, "wall_s": 540,
                   "epochs": 8, "final_val_acc": 0.8054, "final_val_acc_tta": None,
                   "tta": None, "reached_at_epoch": 7, "reached_after_s": 420,
                   "curve": [{"val_acc": 0.5}] * 6 + [{"val_acc": 0.8}, {"val_acc": 0.8054}]}]}}
    text = table(report)
    assert "| relu | 2.00 | 1.00 | - | - | 0.50x |" in text
    assert "| convnetjs training | 100 | 200 | 0.50x | 100 / 300 MiB |" in text
    assert ("| convnetjs training, one core busy with another process | 60 | 150 | 0.40x "
            "(0.80 of quiet) | |") in text
    assert ("| cifar10-fast | init=default, label_smoothing=0 | 1 | 2 | 93.12% | 94.05% "
            "(flip-translate) | 65.0 min | 94.0%: no |") in text
    assert "| cifar10-quick | - | 0 | 8 | 80.54% | - | 9.0 min | 80.0%: epoch 7, 7.0 min |" in text
    assert "seed 1 validation accuracy by epoch: 80.00%, 93.12%" in text


@pytest.mark.slow
def test_training_worker_reports_throughput():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "worker.py"), "convnetpy",
                          "--reps", "1", "--train", "convnetjs"],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)
    assert res["train_img_s"][0] > 0 and res["infer_img_s"][0] > 0 and res["peak_rss_mib"] > 0


@pytest.mark.slow
def test_time_to_accuracy_reads_the_run_it_started():
    """The same code path as --time-to-accuracy, on the bundled digits for two epochs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import time_to_accuracy

    res = time_to_accuracy("digits", 2, preset="digits-lenet5", extra=("--epochs", "2"))
    assert res["epochs"] == 2 and 0 < res["best_val_acc"] <= 1 and res["wall_s"] > 0
    if res["reached_at_epoch"]:
        assert res["reached_after_s"] > 0 and res["best_val_acc"] >= 0.8


@pytest.mark.slow
def test_dashboard_overhead_run_reports_its_timing():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dashboard_overhead.py"),
                          "--one", "dashboard", "--steps", "22"],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["mode"] == "dashboard" and res["seconds"] > 0
    assert res["snapshot_seconds"] == 0  # no page asked: no snapshot was made
