"""``mamori inspect ...``: the worker, photos, evaluation, training and the demo photos.

``register(app)`` adds the commands to the ``inspect`` group that ``mamori.cli`` builds.
Heavy imports (onnxruntime, OpenCV, torch for ``train``) happen inside each command so
that ``mamori --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.errors import ConfigError

if TYPE_CHECKING:
    from inspection_models.settings import InspectionSettings

_console = Console()
_err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; environment variables win over it."),
]
DetectorOption = Annotated[
    str | None,
    typer.Option("--detector", help="onnx or classical (default: the settings' detector)."),
]
ModelOption = Annotated[
    Path | None, typer.Option("--model", help="ONNX model file (default: the shipped one).")
]


def _settings(
    config: Path | None, detector: str | None = None, model: Path | None = None
) -> InspectionSettings:
    from core.logs import setup_logging
    from core.settings import load_settings
    from inspection_models.settings import InspectionSettings

    settings = load_settings(InspectionSettings, config)
    setup_logging(settings.log.level, settings.log.format)
    update: dict[str, object] = {}
    if detector is not None:
        if detector not in ("onnx", "classical"):
            raise ConfigError(f"--detector must be onnx or classical, not {detector!r}")
        update["detector"] = detector
    if model is not None:
        update["model_path"] = model
        update.setdefault("detector", "onnx")
    return settings.model_copy(update=update) if update else settings


def worker(
    config: ConfigOption = None,
    until_empty: Annotated[
        bool, typer.Option("--until-empty", help="Stop when no photo is pending.")
    ] = False,
    no_events: Annotated[
        bool, typer.Option("--no-events", help="Do not publish MQTT events.")
    ] = False,
) -> None:
    """Claim pending photos, detect damage, write detections, publish events."""
    import signal
    import threading

    from inspection_models.detectors import build_detector
    from inspection_models.pipeline import Inspector
    from inspection_models.worker import InspectionWorker, MqttEventSink
    from mamori.stack import database_url, migrate_url

    settings = _settings(config)
    detector_config = settings.detector_config()
    inspector = Inspector(
        build_detector(detector_config),
        settings.tiling,
        settings.measurement,
        batch_size=getattr(detector_config, "batch_size", 8),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sink = None
    if settings.publish_events and not no_events:
        sink = MqttEventSink(settings.mqtt, f"mamori-inspect-{settings.worker_id}")
    with database_url(settings.database) as url:
        migrate_url(url)
        service = InspectionWorker(
            url, inspector, settings.blob_dir, settings.worker, settings.worker_id, sink
        )
        try:
            service.run(stop, until_empty=until_empty)
        except KeyboardInterrupt:
            pass
        finally:
            service.close()
            if sink is not None:
                sink.close()
    _console.print(f"inspection worker stopped: {service.processed} done, {service.failed} failed")


def photo(
    files: Annotated[list[Path], typer.Argument(help="Photos (.jpg, .png).", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="Folder for the annotated copies.")] = Path(
        "var/inspect"
    ),
    gsd_mm: Annotated[
        float | None, typer.Option("--gsd-mm", help="Millimetres per pixel, if known.", min=0)
    ] = None,
    distance_m: Annotated[
        float | None, typer.Option(help="Camera-to-surface distance, metres.")
    ] = None,
    focal_mm: Annotated[float | None, typer.Option(help="Lens focal length, mm.")] = None,
    sensor_mm: Annotated[float | None, typer.Option(help="Sensor width, mm.")] = None,
    detector: DetectorOption = None,
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per photo.")] = False,
    config: ConfigOption = None,
) -> None:
    """Draw boxes and crack measurements onto photos and print the findings."""
    import cv2

    from core.inspection import GroundSampleDistance
    from inspection_models.detection import read_image
    from inspection_models.detectors import build_detector
    from inspection_models.overlay import caption, draw
    from inspection_models.pipeline import Inspector

    settings = _settings(config, detector, model)
    detector_config = settings.detector_config()
    inspector = Inspector(
        build_detector(detector_config),
        settings.tiling,
        settings.measurement,
        batch_size=getattr(detector_config, "batch_size", 8),
    )
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        image = read_image(path)
        if image is None:
            _err.print(f"[red]{path}: not a picture OpenCV can read[/]")
            raise typer.Exit(1)
        mm_per_px = gsd_mm
        if mm_per_px is None and distance_m and focal_mm and sensor_mm:
            mm_per_px = GroundSampleDistance(
                distance_m=distance_m,
                focal_length_mm=focal_mm,
                sensor_width_mm=sensor_mm,
                image_width_px=image.shape[1],
            ).resolve()
        result = inspector.inspect(image, mm_per_px)
        target = out / f"{path.stem}.inspected.jpg"
        cv2.imwrite(str(target), draw(image, result.findings), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if as_json:
            sys.stdout.write(
                json.dumps(
                    {
                        "photo": str(path),
                        "overlay": str(target),
                        "verdict": result.verdict.value,
                        "reason": result.reason,
                        "tiles": result.tiles,
                        "seconds": round(result.seconds, 3),
                        "mm_per_px": result.mm_per_px,
                        "findings": [f.model_dump(mode="json") for f in result.findings],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            continue
        height, width = image.shape[:2]
        _console.print(
            f"[bold]{path}[/] {width}×{height}: {result.verdict.value}"
            f"{' — ' + result.reason if result.reason else ''} "
            f"({result.tiles} tiles, {result.seconds:.2f} s) → {target}"
        )
        table = Table("type", "conf", "box", "measurement")
        for finding in result.findings:
            b = finding.box
            table.add_row(
                finding.damage_type.value,
                f"{finding.confidence:.2f}",
                f"{b.x1:.0f},{b.y1:.0f}–{b.x2:.0f},{b.y2:.0f}",
                caption(finding).split(" ", 2)[2] if finding.measurement else "",
            )
        _console.print(table)


def evaluate(
    images: Annotated[Path, typer.Option("--images", help="Folder of pictures.", exists=True)],
    labels: Annotated[
        Path, typer.Option("--labels", help="Folder of YOLO label files (same stems).")
    ],
    class_map: Annotated[
        str, typer.Option("--class-map", help="Label class index → damage type.")
    ] = "0=crack",
    iou: Annotated[float, typer.Option("--iou", min=0.05, max=0.95)] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
    detector: DetectorOption = None,
    model: ModelOption = None,
    confidence: Annotated[
        float | None, typer.Option(help="Operating threshold (default: the detector's).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Box-level P/R/F1/AP@0.5 per class and image-level P/R/F1 on a labelled folder."""
    from core.damage import DamageType
    from core.inspection import OnnxDetectorConfig
    from inspection_models.detectors import build_detector
    from inspection_models.evaluate import load_samples, parse_class_map, predict_all, score

    settings = _settings(config, detector, model)
    detector_config = settings.detector_config()
    operating = confidence if confidence is not None else detector_config.confidence
    per_class: dict[DamageType, float] = {}
    low_update: dict[str, object] = {"confidence": 0.001}
    if isinstance(detector_config, OnnxDetectorConfig):
        if confidence is None:
            per_class = dict(detector_config.class_confidence)
        low_update["class_confidence"] = {}
    # Every prediction down to a very low confidence, for the precision-recall curve.
    low = detector_config.model_copy(update=low_update)
    built = build_detector(low)
    mapping = parse_class_map(class_map)
    samples = load_samples(images, labels, mapping)
    predictions = predict_all(samples, built.detect)
    report = score(
        samples,
        predictions,
        list(dict.fromkeys(mapping.values())),
        iou_threshold=iou,
        confidence=operating,
        class_confidence=per_class,
        detector=f"{built.name}@{built.version}",
    )
    if as_json:
        sys.stdout.write(report.model_dump_json() + "\n")
        return
    level = report.image_level
    thresholds = ", ".join(f"{d.value} {v}" for d, v in per_class.items())
    _console.print(
        f"{len(samples)} images, detector {report.detector}, IoU {iou}, "
        f"confidence {operating}{' (' + thresholds + ')' if thresholds else ''}"
    )
    _console.print(
        f"image level: precision {level.precision:.3f} recall {level.recall:.3f} "
        f"F1 {level.f1:.3f} ({level.positives} with damage)"
    )
    table = Table("class", "precision", "recall", "F1", "AP@0.5", "truths", "predictions")
    for name, scores in report.per_class.items():
        table.add_row(
            name,
            f"{scores.precision:.3f}",
            f"{scores.recall:.3f}",
            f"{scores.f1:.3f}",
            f"{scores.ap50:.3f}",
            str(scores.ground_truth),
            str(scores.predictions),
        )
    _console.print(table)
    _console.print(f"mAP@0.5 {report.map50:.3f}")


def train(
    dataset: Annotated[
        Path, typer.Option(help="omu-crack-quay folder (one sub-folder per site).")
    ] = Path("../shared/datasets/omu-crack-quay"),
    train_sites: Annotated[str, typer.Option(help="Sites to train on, comma-separated.")] = "h1",
    val_sites: Annotated[str, typer.Option(help="Sites held out, comma-separated.")] = "o6",
    epochs: Annotated[int, typer.Option(min=1, max=1000)] = 60,
    imgsz: Annotated[int, typer.Option(min=64, max=1280)] = 256,
    model_yaml: Annotated[str, typer.Option("--model-yaml")] = "yolov8n.yaml",
    threads: Annotated[int, typer.Option(min=1, max=64)] = 2,
    out: Annotated[Path, typer.Option(help="Runs and the built dataset go here.")] = Path(
        "var/train"
    ),
    install: Annotated[
        bool, typer.Option(help="Copy the exported ONNX model into inspection_models/weights.")
    ] = False,
) -> None:
    """Train a nano YOLO model from scratch, offline, and export ONNX (needs the train extra)."""
    import dataclasses
    import shutil

    try:
        from inspection_models.training.train import train as run_training
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(f"training needs the train extra (torch, ultralytics): {exc}") from exc
    try:
        result = run_training(
            dataset,
            out,
            train_sites=tuple(train_sites.split(",")),
            val_sites=tuple(val_sites.split(",")),
            epochs=epochs,
            imgsz=imgsz,
            model_yaml=model_yaml,
            threads=threads,
            name=f"{train_sites.replace(',', '+')}_to_{val_sites.replace(',', '+')}",
        )
    except ModuleNotFoundError as exc:
        raise ConfigError(f"training needs the train extra (torch, ultralytics): {exc}") from exc
    _console.print_json(json.dumps(dataclasses.asdict(result)))
    _console.print(f"exported {result.onnx_path} in {result.seconds:.0f} s of training")
    if install:
        from inspection_models.onnx_backend import DEFAULT_MODEL

        shutil.copyfile(result.onnx_path, DEFAULT_MODEL)
        _console.print(f"installed as {DEFAULT_MODEL}")


def demo(
    config: ConfigOption = None,
    detector: DetectorOption = None,
) -> None:
    """Queue the shipped sample photos and run the worker on them until the queue is empty."""
    import threading

    from inspection_models.demo import queue_samples
    from inspection_models.detectors import build_detector
    from inspection_models.pipeline import Inspector
    from inspection_models.worker import InspectionWorker
    from mamori.stack import database_url, migrate_url
    from store.db import connect

    settings = _settings(config, detector)
    inspector = Inspector(
        build_detector(settings.detector_config()), settings.tiling, settings.measurement
    )
    with database_url(settings.database) as url:
        migrate_url(url)
        with connect(url) as conn:
            ids = queue_samples(conn, settings.blob_dir)
            conn.commit()
        service = InspectionWorker(
            url, inspector, settings.blob_dir, settings.worker, settings.worker_id
        )
        service.run(threading.Event(), until_empty=True)
        service.close()
        with connect(url) as conn:
            rows = conn.execute(
                "SELECT id, status, review_reason FROM images WHERE id = ANY(%s) ORDER BY id",
                (ids,),
            ).fetchall()
    table = Table("image", "status", "reason")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    _console.print(table)
    _console.print(
        "Sample photos: Yoshida Laboratory, Osaka Metropolitan University "
        "(CC BY-SA 4.0); see inspection_models/samples/ATTRIBUTION.md"
    )


def register(app: typer.Typer) -> None:
    """Add the inspection commands to the ``mamori inspect`` group."""
    app.command("worker")(worker)
    app.command("run", hidden=True)(worker)
    app.command("photo")(photo)
    app.command("detect", hidden=True)(photo)
    app.command("eval")(evaluate)
    app.command("evaluate", hidden=True)(evaluate)
    app.command("train")(train)
    app.command("demo")(demo)


def _standalone() -> None:
    """``python -m mamori.commands.inspect ...`` before the group is wired into ``mamori``."""
    app = typer.Typer(help="Damage detection on photos.", no_args_is_help=True)
    register(app)
    try:
        app()
    except ConfigError as err:
        _err.print(f"[red]configuration error:[/] {err}")
        sys.exit(2)


if __name__ == "__main__":
    _standalone()
