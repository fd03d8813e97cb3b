"""Inspection benchmark: ONNX Runtime vs PyTorch, and whole drone photos with tiling.

    python bench/inspection.py            # full run (a few minutes on 2 cores)
    python bench/inspection.py --quick    # about a minute: fewer repeats, a 12-MP photo
    python bench/inspection.py --json     # one JSON object with every figure

Figures:

* ONNX Runtime forward at 640 px, images per second, with 1 and 2 threads, batch 1 and 8;
* the same network through PyTorch in the same run (needs torch + ultralytics: taken
  from this interpreter if it has them, else from ``.venv-train/bin/python`` or
  ``$MAMORI_TRAIN_PYTHON`` in a subprocess), and the ratio ONNX / PyTorch. Speed does not
  depend on the weights' values, so PyTorch runs the same architecture from its yaml;
* the classical finder on the same 640-px pictures (a baseline with no model);
* seconds per 20-megapixel photo (5472 × 3648, the Autel EVO II Pro's frame; 12 MP,
  4000 × 3000, with ``--quick``) through the whole pipeline: tiling at native
  resolution, detection, merging, crack measurement. The photo is a mosaic of the real
  o6 tiles, so it is full of cracks: a worst case for measurement time.

Nothing here is asserted; tests never time anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASET = ROOT / "../shared/datasets/omu-crack-quay"


def _real_pictures(size: int, count: int) -> list[np.ndarray]:
    """``count`` pictures of ``size`` px made of real crack tiles (repeated as needed)."""
    from inspection_models.detection import read_image

    tiles = [t for p in sorted(DATASET.glob("*/*.jpg")) if (t := read_image(p)) is not None]
    if not tiles:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    per_side = -(-size // 256)
    pictures = []
    for n in range(count):
        rows = []
        for r in range(per_side):
            row = [tiles[(n * 7 + r * per_side + c) % len(tiles)] for c in range(per_side)]
            rows.append(np.hstack(row))
        pictures.append(np.ascontiguousarray(np.vstack(rows)[:size, :size]))
    return pictures


def _drone_photo(width: int = 5472, height: int = 3648) -> np.ndarray:
    from inspection_models.detection import read_image

    tiles = [t for p in sorted(DATASET.glob("o6/*.jpg")) if (t := read_image(p)) is not None]
    cols, rows = -(-width // 256), -(-height // 256)
    grid = [
        np.hstack([tiles[(r * cols + c) % len(tiles)] for c in range(cols)]) for r in range(rows)
    ]
    return np.ascontiguousarray(np.vstack(grid)[:height, :width])


def _time(fn: object, repeats: int) -> float:
    assert callable(fn)
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def bench_onnx(model: Path, repeats: int) -> dict[str, float]:
    from core.inspection import OnnxDetectorConfig
    from inspection_models.onnx_backend import OnnxDetector
    from inspection_models.yolo import to_blob

    pictures = _real_pictures(640, 8)
    out: dict[str, float] = {}
    for threads in (1, 2):
        detector = OnnxDetector(OnnxDetectorConfig(model_path=model, threads=threads))
        for batch in (1, 8):
            blob = to_blob(pictures[:batch])
            seconds = _time(lambda blob=blob, d=detector: d.raw(blob), repeats)
            out[f"onnx_640_threads{threads}_batch{batch}_images_per_s"] = round(batch / seconds, 2)
            out[f"onnx_640_threads{threads}_batch{batch}_ms_per_image"] = round(
                1000 * seconds / batch, 2
            )
        # End to end (letterbox, forward, decode, NMS) for one picture.
        seconds = _time(lambda d=detector: d.detect(pictures[:1]), repeats)
        out[f"onnx_640_threads{threads}_detect_ms_per_image"] = round(1000 * seconds, 2)
    return out


def bench_torch_here(repeats: int, classes: int) -> dict[str, float]:
    """PyTorch forward of the same architecture; runs in an interpreter with torch."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / "var/yolo"))
    import torch  # type: ignore[import-not-found, unused-ignore]
    from ultralytics.nn.tasks import (  # type: ignore[import-not-found, unused-ignore]
        DetectionModel,
    )

    model = DetectionModel("yolov8n.yaml", nc=classes, verbose=False).eval()
    model.fuse(verbose=False)
    pictures = _real_pictures(640, 8)
    out: dict[str, float] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 8):
            tensor = (
                torch.from_numpy(
                    np.stack(pictures[:batch])[..., ::-1].transpose(0, 3, 1, 2).copy()
                ).float()
                / 255
            )

            def forward(tensor: torch.Tensor = tensor) -> None:
                with torch.inference_mode():
                    model(tensor)

            seconds = _time(forward, repeats)
            out[f"torch_640_threads{threads}_batch{batch}_images_per_s"] = round(batch / seconds, 2)
            out[f"torch_640_threads{threads}_batch{batch}_ms_per_image"] = round(
                1000 * seconds / batch, 2
            )
    return out


def bench_torch(repeats: int, classes: int) -> dict[str, float] | str:
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        import ultralytics  # type: ignore[import-not-found, unused-ignore]  # noqa: F401

        return bench_torch_here(repeats, classes)
    except ImportError:
        pass
    python = Path(os.environ.get("MAMORI_TRAIN_PYTHON", ROOT / ".venv-train/bin/python"))
    if not python.exists():
        return f"no PyTorch here and no training interpreter at {python}"
    done = subprocess.run(
        [
            str(python),
            __file__,
            "--torch-only",
            "--repeats",
            str(repeats),
            "--classes",
            str(classes),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        return f"PyTorch run failed: {done.stderr[-500:]}"
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_classical(repeats: int) -> dict[str, float]:
    from core.inspection import ClassicalDetectorConfig
    from inspection_models.classical import ClassicalDetector

    detector = ClassicalDetector(ClassicalDetectorConfig())
    pictures = _real_pictures(640, 1)
    seconds = _time(lambda: detector.detect(pictures), repeats)
    return {
        "classical_640_ms_per_image": round(1000 * seconds, 2),
        "classical_640_images_per_s": round(1 / seconds, 2),
    }


def bench_photo(
    model: Path, threads: int, repeats: int, width: int = 5472, height: int = 3648
) -> dict[str, float]:
    from core.inspection import ClassicalDetectorConfig, OnnxDetectorConfig, TilingConfig
    from inspection_models.classical import ClassicalDetector
    from inspection_models.onnx_backend import OnnxDetector
    from inspection_models.pipeline import Inspector

    photo = _drone_photo(width, height)
    megapixels = round(photo.shape[0] * photo.shape[1] / 1e6, 1)
    out: dict[str, float] = {"photo_megapixels": megapixels}
    tag = f"{round(megapixels)}mp"
    tiling = TilingConfig()
    for name, detector in (
        ("onnx", OnnxDetector(OnnxDetectorConfig(model_path=model, threads=threads, batch_size=8))),
        ("classical", ClassicalDetector(ClassicalDetectorConfig())),
    ):
        inspector = Inspector(detector, tiling, batch_size=8)
        result = inspector.inspect(photo, mm_per_px=2.28)  # warm-up, and the answer if 0
        started = time.perf_counter()
        for _ in range(repeats):
            result = inspector.inspect(photo, mm_per_px=2.28)
        seconds = (time.perf_counter() - started) / repeats if repeats else result.seconds
        out[f"{name}_{tag}_photo_seconds"] = round(seconds, 2)
        out[f"{name}_{tag}_photo_tiles"] = result.tiles
        out[f"{name}_{tag}_photo_findings"] = len(result.findings)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: shipped)")
    parser.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--classes", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 10)
    if args.torch_only:
        print(json.dumps(bench_torch_here(repeats, args.classes)))
        return 0
    from inspection_models.onnx_backend import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    numbers: dict[str, float] = {}
    notes: dict[str, object] = {"quick": args.quick, "repeats": repeats, "cpus": os.cpu_count()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else -1.0
    numbers["load_average_1min_at_start"] = round(load, 2)
    numbers.update(bench_onnx(model, repeats))
    torch_figures = bench_torch(repeats, args.classes)
    if isinstance(torch_figures, str):
        notes["torch_unavailable"] = torch_figures
    else:
        numbers.update(torch_figures)
        for threads in (1, 2):
            for batch in (1, 8):
                key = f"640_threads{threads}_batch{batch}_images_per_s"
                numbers[f"ratio_onnx_over_torch_threads{threads}_batch{batch}"] = round(
                    numbers[f"onnx_{key}"] / torch_figures[f"torch_{key}"], 2
                )
    numbers.update(bench_classical(repeats))
    numbers["ratio_onnx_threads2_batch1_over_classical"] = round(
        numbers["onnx_640_threads2_batch1_images_per_s"] / numbers["classical_640_images_per_s"],
        2,
    )
    if args.quick:  # one 12-megapixel photo, timed once (its warm-up run)
        numbers.update(bench_photo(model, threads=2, repeats=0, width=4000, height=3000))
    else:
        numbers.update(bench_photo(model, threads=2, repeats=2))
    figures: dict[str, object] = {**notes, **numbers}
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
