"""``python -m mamori`` is the ``mamori`` command."""

from mamori.cli import main

main()
