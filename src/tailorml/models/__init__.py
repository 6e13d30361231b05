"""Model artifacts, below every library: base models in, trained-model folders described.

``data``, ``train``, ``eval``, ``serve`` and the platform all read models;
they share this package instead of importing one another for it.

- ``catalog``      the built-in base models (``catalog()``, ``find_base()``)
- ``sources``      model sources and ``materialize()``: a name or path -> a local HF folder
- ``gguf_import``  GGUF -> safetensors conversion, once, under a file lock
- ``manifest``     ``ModelManifest``: the versioned ``tailor_model.json`` of a trained model
- ``atomic``       all-or-nothing folder writes
- ``tiny``         tiny random models with the real tokenizers, for tests and first runs

Importing any of these is light: torch and transformers load inside functions.
"""
