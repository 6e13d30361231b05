"""Training: the base-model catalog and sources, tasks, the training loop, LoRA, checkpoints."""
