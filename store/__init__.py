"""PostgreSQL for Mamori: migrations, typed queries, the TimescaleDB-or-plain switch,
and the embedded server used by ``mamori demo`` and by runs with no database configured.

Every statement is parameterised; psycopg errors are translated to
:class:`core.errors.StoreError` at this boundary.
"""
