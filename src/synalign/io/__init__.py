"""Records in and out (JSONL, CSV, Parquet, Hugging Face folders) and the bundled corpora."""

from synalign.io.atomic import atomic_write_bytes, atomic_write_text
from synalign.io.readers import (
    READ_SUFFIXES,
    LoadResult,
    read_jsonl,
    read_records,
    records_from_rows,
    validate_labelled,
)
from synalign.io.writers import WRITE_FORMATS, output_format, write_jsonl, write_records

__all__ = [
    "READ_SUFFIXES",
    "WRITE_FORMATS",
    "LoadResult",
    "atomic_write_bytes",
    "atomic_write_text",
    "output_format",
    "read_jsonl",
    "read_records",
    "records_from_rows",
    "validate_labelled",
    "write_jsonl",
    "write_records",
]
