"""Persistent state in SQL (SQLAlchemy 2 Core): SQLite in a data directory by default, or any
database a URL names (PostgreSQL in production).

Data directory layout: ``<data-dir>/fleetid.db`` is the SQLite database (see ``engine``).
"""
