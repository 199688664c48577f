"""The stages, one module each: discover, validate, convert, describe, package (see executor.py)."""
