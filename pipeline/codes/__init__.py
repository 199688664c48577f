"""Registry files of problem codes, one TOML file per area (see pipeline/errors.py)."""
