"""Trainers: rollout, advantages, the GRPO loss and the training loop."""
