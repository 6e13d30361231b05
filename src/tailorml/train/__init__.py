"""Training: tasks, the training loop, LoRA, checkpoints, hyperparameters.

Base models (catalog, sources, ``materialize``) and the manifest a trained
model is written with live in ``tailorml.models``. The map (the platform's
job worker calls ``hyperparams`` and starts ``run``):

- ``hyperparams``  ``resolve_hyperparameters()``: validate values, pick "auto" ones
- ``loop``         ``train()``: the one training loop, events, checkpoints, resume
- ``run``          ``python -m tailorml.train.run SPEC.json``: one run in its own process,
                   events as JSON lines, exit codes, stop on SIGTERM or when the parent dies
- ``run_spec``     ``RunSpec``: what that process runs, as a checked JSON file
- ``finish``       after the model is saved: evaluation report, record index, fidelity probes
- ``spec``         ``TrainSpec``/``TrainResult``, the resume fingerprint, the model manifest
- ``tasks``        the task interface; ``classification``, ``embedding`` (pairs, in-batch
                   negatives), ``sft`` (chat, completion) and ``preference`` (DPO)
- ``data``         a run's data: checked, split, encoded
- ``setup``        the model to train and its optimizer
- ``health``       the health guard: faulty steps skipped, records quarantined, roll-back
- ``lora``         peft LoRA wrapping and adapter restore
- ``privacy``      DP-SGD (opacus): ``PrivateRecipe``, what ``train()`` runs for a DP spec
- ``checkpoints``  model folders, checkpoint save/load/prune
- ``evaluation``   validation loss and accuracy during training
- ``batching``     the seeded, length-bucketed data order
- ``distributed``  under torchrun (DDP): a rank's share of a batch, the shared stop, collectives

Importing any of these is light: torch and transformers load inside functions.
"""
