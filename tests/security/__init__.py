"""Security tests: one per hole, each named after its OWASP API Security Top 10 (2023) item."""
