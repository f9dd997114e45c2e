"""The learning loop: feedback -> datasets -> LoRA adapter -> gate -> registry."""
