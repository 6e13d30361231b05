"""Data preparation: readers and writers, operators, recipes, the runner and data reports.

This library knows nothing of tenants, HTTP or the database: it takes paths
and plain values and reports progress through a callback.
"""
