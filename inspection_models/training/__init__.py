"""Training and export (the ``train`` extra): the only code that imports torch or ultralytics.

:mod:`.dataset` builds a YOLO-format dataset (real drone crack tiles plus procedural
pictures of the damage types that have no public photos) with numpy and OpenCV only;
:mod:`.train` runs Ultralytics offline and exports ONNX for the run-time detector.
"""
