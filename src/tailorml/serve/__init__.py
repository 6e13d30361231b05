"""Serving: load base models and LoRA adapters, generate (streamed or not), embed, classify.

``Engine`` is the entry point; ``ModelRef`` names what to serve. Importing
this package does not import torch: the backend imports it on first use.
"""

from tailorml.serve.engine import Completion, Engine, StreamDelta
from tailorml.serve.models import ModelRef

__all__ = ["Completion", "Engine", "ModelRef", "StreamDelta"]
