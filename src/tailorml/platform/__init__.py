"""The platform: settings, database, storage, tenants and keys, jobs, the HTTP API.

It wires the libraries (`tailorml.data`, `tailorml.train`, `tailorml.serve`)
to storage, jobs and HTTP; the libraries never import it.
"""
