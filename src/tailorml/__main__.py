"""``python -m tailorml`` is the ``tailor`` command."""

from tailorml.cli import app

app()
