"""A one-epoch training run on a few pictures, so that the training path cannot rot.

Training needs the ``train`` extra (torch, ultralytics), which the run-time install does
not have: the run happens in the training interpreter, ``$MAMORI_TRAIN_PYTHON`` or
``.venv-train/bin/python`` (see docs/inspection.md for how to make it). Its ONNX export
is then loaded by the run-time detector here, with onnxruntime only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.damage import MODEL_CLASSES
from core.inspection import OnnxDetectorConfig
from inspection_models.onnx_backend import OnnxDetector

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "../shared/datasets/omu-crack-quay"


def _train_python() -> Path:
    configured = os.environ.get("MAMORI_TRAIN_PYTHON")
    candidate = Path(configured) if configured else ROOT / ".venv-train/bin/python"
    if not candidate.exists():
        pytest.fail(
            f"no training interpreter at {candidate}: create .venv-train with the train extra "
            "(docs/inspection.md) or set MAMORI_TRAIN_PYTHON"
        )
    return candidate


def test_one_epoch_trains_exports_and_runs(tmp_path: Path) -> None:
    python = _train_python()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            str(python),
            "-m",
            "inspection_models.training.train",
            "--dataset",
            str(DATASET),
            "--out",
            str(tmp_path / "train"),
            "--train-sites",
            "h1",
            "--val-sites",
            "o6",
            "--epochs",
            "1",
            "--limit",
            "4",
            "--imgsz",
            "64",
            "--batch",
            "4",
            "--name",
            "smoke",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1
    onnx_path = Path(result["onnx_path"])
    if not onnx_path.is_absolute():
        onnx_path = tmp_path / onnx_path
    detector = OnnxDetector(OnnxDetectorConfig(model_path=onnx_path, confidence=0.01))
    assert detector.classes == MODEL_CLASSES
    found = detector.detect([np.full((64, 64, 3), 128, dtype=np.uint8)])
    assert len(found) == 1  # one list per picture; an untrained model may find anything
    assert sys.executable != str(python)
