"""Device-side software: sensor drivers, the MQTT publisher, the Yamaguchi fleet simulator.

Imports only :mod:`core`: a field device installs ``mamori[edge]`` and never psycopg,
onnxruntime or OpenCV.
"""
