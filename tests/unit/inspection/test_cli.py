"""The ``mamori inspect`` commands, run through Typer as a user would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest
import typer
from typer.testing import CliRunner

from inspection_models.demo import SAMPLES_DIR
from mamori.commands.inspect import register

DATASET = Path(__file__).resolve().parents[3] / "../shared/datasets/omu-crack-quay"


@pytest.fixture
def app() -> typer.Typer:
    group = typer.Typer()
    register(group)
    return group


def test_eval_prints_exactly_one_json_object(app: typer.Typer, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    for image in sorted((DATASET / "o6").glob("*.jpg"))[:6]:
        shutil.copyfile(image, folder / image.name.replace(".jpg", ".JPG"))
        shutil.copyfile(image.with_suffix(".txt"), folder / f"{image.stem}.txt")
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--images",
            str(folder),
            "--labels",
            str(folder),
            "--class-map",
            "0=crack",
            "--iou",
            "0.5",
            "--json",
            "--detector",
            "classical",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert set(report["image_level"]) >= {"precision", "recall", "f1"}
    assert set(report["per_class"]["crack"]) >= {"precision", "recall", "f1", "ap50"}
    assert 0 <= report["map50"] <= 1
    assert report["image_level"]["images"] == 6


def test_photo_writes_an_overlay_and_prints_findings(app: typer.Typer, tmp_path: Path) -> None:
    photo = SAMPLES_DIR / "o6_MAX_0954_row4_cols15-20.jpg"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "photo",
            str(photo),
            "--out",
            str(out),
            "--gsd-mm",
            "2.28",
            "--detector",
            "classical",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["verdict"] == "flagged"
    assert report["tiles"] == 3  # 1536 px wide: three 640-px tiles with overlap
    assert any(f["damage_type"] == "crack" for f in report["findings"])
    assert all(
        f["measurement"]["max_width_mm"] is not None
        for f in report["findings"]
        if f["damage_type"] == "crack"
    )
    overlay = cv2.imread(report["overlay"])
    assert overlay is not None
    assert overlay.shape[:2] == (256, 1536)


def test_a_bad_detector_name_is_a_config_error(app: typer.Typer, tmp_path: Path) -> None:
    photo = SAMPLES_DIR / "o6_MAX_0954_5_8.jpg"
    result = CliRunner().invoke(
        app, ["photo", str(photo), "--out", str(tmp_path), "--detector", "yolo"]
    )
    assert result.exit_code != 0
    assert "onnx or classical" in str(result.exception)
