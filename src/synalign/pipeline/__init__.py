"""The pipeline: ESM -> LAR -> SDA over a run directory, resumable stage by stage."""
