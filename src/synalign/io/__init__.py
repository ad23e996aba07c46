"""Records in and out (JSONL, CSV, Parquet, Hugging Face folders) and the bundled corpora."""
