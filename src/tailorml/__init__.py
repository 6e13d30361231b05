"""TailorML: data in, fine-tuned model out, served over an OpenAI-compatible API.

`import tailorml` stays light (no torch): the heavy engines import their
dependencies where they are used.
"""

__version__ = "0.1.0"
