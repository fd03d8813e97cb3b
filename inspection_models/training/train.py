"""Train a nano YOLO model from scratch, fully offline, and export it to ONNX.

Run it through ``mamori inspect train`` (which needs the ``train`` extra) or directly::

    python -m inspection_models.training.train --train-sites h1 --val-sites o6 --epochs 40

Ultralytics reaches for the network in several places even when told not to; the
environment below (see ``shared/notes/ultralytics-offline.md``) is set *before* it is
imported: no DNS probes, no run-time pip installs, settings and fonts in our own folder,
no telemetry, no pretrained download, no AMP check, no onnxslim.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from inspection_models.training.dataset import DatasetSummary, build

_log = logging.getLogger(__name__)

DEFAULT_DATASET = Path("../shared/datasets/omu-crack-quay")


@dataclass(frozen=True, slots=True)
class TrainResult:
    run_dir: str
    onnx_path: str
    epochs: int
    imgsz: int
    seconds: float
    train_images: int
    train_real: int
    val_images: int
    model_yaml: str


def prepare_offline(var_dir: Path) -> None:
    """Point Ultralytics and matplotlib at our folders and give them the fonts they want."""
    config_dir = (var_dir / "yolo").resolve()
    mpl_dir = (var_dir / "mpl").resolve()
    (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)
    mpl_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["MPLCONFIGDIR"] = str(mpl_dir)
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    import matplotlib  # type: ignore[import-not-found, import-untyped, unused-ignore]

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = config_dir / "Ultralytics" / name
        if not target.exists():
            shutil.copyfile(font, target)


def train(
    dataset: Path,
    out_dir: Path,
    *,
    train_sites: tuple[str, ...],
    val_sites: tuple[str, ...],
    epochs: int,
    imgsz: int = 256,
    batch: int = 16,
    model_yaml: str = "yolov8n.yaml",
    seed: int = 0,
    threads: int = 2,
    limit: int | None = None,
    var_dir: Path = Path("var"),
    name: str = "run",
) -> TrainResult:
    """Build the dataset, train from scratch on the CPU, export ONNX (opset 17, dynamic)."""
    prepare_offline(var_dir)
    summary: DatasetSummary = build(
        dataset, out_dir / "data", train_sites, val_sites, seed=seed, limit=limit
    )
    import torch  # type: ignore[import-not-found, unused-ignore]

    torch.set_num_threads(threads)
    from ultralytics import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
        YOLO,
        settings,
    )

    # Only the keys this Ultralytics version knows: telemetry and every tracker off.
    settings.update({key: False for key, value in settings.items() if isinstance(value, bool)})

    started = time.perf_counter()
    model = YOLO(model_yaml)
    model.train(
        data=str(summary.data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device="cpu",
        workers=0,
        pretrained=False,
        amp=False,
        plots=False,
        val=False,  # the held-out site is for our own evaluation, never model selection
        seed=seed,
        deterministic=True,
        project=str(out_dir.resolve()),
        name=name,
        exist_ok=True,
        verbose=False,
        # Thin cracks survive flips and mosaics but not heavy colour shifts or scaling
        # that would change their width in pixels.
        fliplr=0.5,
        flipud=0.5,
        scale=0.2,
        mosaic=1.0,
        close_mosaic=max(1, epochs // 5),
    )
    seconds = time.perf_counter() - started
    run_dir = out_dir / name
    last = run_dir / "weights" / "last.pt"
    exported = YOLO(str(last)).export(
        format="onnx", opset=17, simplify=False, dynamic=True, imgsz=imgsz, device="cpu"
    )
    result = TrainResult(
        run_dir=str(run_dir),
        onnx_path=str(exported),
        epochs=epochs,
        imgsz=imgsz,
        seconds=round(seconds, 1),
        train_images=summary.train_images,
        train_real=summary.train_real,
        val_images=summary.val_images,
        model_yaml=model_yaml,
    )
    (run_dir / "train_result.json").write_text(
        json.dumps(asdict(result), indent=2), encoding="utf-8"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--out", type=Path, default=Path("var/train"))
    parser.add_argument("--train-sites", default="h1")
    parser.add_argument("--val-sites", default="o6")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", default="yolov8n.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="images per site (smoke runs)")
    parser.add_argument("--name", default="run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = train(
        args.dataset,
        args.out,
        train_sites=tuple(args.train_sites.split(",")),
        val_sites=tuple(args.val_sites.split(",")),
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        model_yaml=args.model,
        seed=args.seed,
        threads=args.threads,
        limit=args.limit,
        name=args.name,
    )
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
