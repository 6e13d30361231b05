"""Fixtures for the security tests: the platform's settings, app client and two tenants.

Re-exported from ``tests/platform/conftest.py`` so every test here runs on SQLite and
PostgreSQL with the same fresh app the platform tests use.
"""

from __future__ import annotations

from tests.platform.conftest import acme, client, globex, make_tenant, settings

__all__ = ["acme", "client", "globex", "make_tenant", "settings"]
