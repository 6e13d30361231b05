"""Training: the base-model catalog and sources, tasks, the training loop, LoRA, checkpoints.

The map (the platform's job worker calls the first four):

- ``catalog``      the built-in base models (``catalog()``, ``find_base()``)
- ``sources``      model sources and ``materialize()``: a name or path -> a local HF folder
- ``hyperparams``  ``resolve_hyperparameters()``: validate values, pick "auto" ones
- ``loop``         ``train()``: the one training loop, events, checkpoints, resume
- ``spec``         ``TrainSpec``/``TrainResult``, the resume fingerprint, the model manifest
- ``tasks``        the task interface; ``classification`` and ``sft`` (chat, completion)
- ``lora``         peft LoRA wrapping and adapter restore
- ``checkpoints``  model folders, checkpoint save/load/prune
- ``evaluation``   validation loss and accuracy during training
- ``batching``     the seeded, length-bucketed data order
- ``gguf_import``  GGUF -> safetensors conversion, once, under a file lock
- ``atomic``       all-or-nothing folder writes
- ``tiny``         tiny random models with the real tokenizers, for tests and first runs

Importing any of these is light: torch and transformers load inside functions.
"""
