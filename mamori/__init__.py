"""The composition root: the ``mamori`` command, ``mamori demo`` and the embedded stack.

Only this package imports every service; the services talk to each other through MQTT
topics and database tables.
"""
