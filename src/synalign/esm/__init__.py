"""Stage 1, exploration (ESM): Gaussian-process uncertainty picks diverse demonstration clusters."""
