"""Stage 2, latent attribute reasoning (LAR): prompts, generation, filters, label checks."""
