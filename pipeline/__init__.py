"""preservation-pipeline: sealed, standards-conformant preservation packages from photographs.

Public API (prints nothing, never exits, raises only `PipelineError` subclasses):
    run(collection, output, settings)          every stage; returns a RunResult
    validate_collection(collection, settings)  discover + validate; returns the Package
    audit(paths, output=, db=, budget=...)     fixity audit of stored bags; returns an AuditReport
"""
__version__ = "0.1.0"

__all__ = ["__version__", "run", "validate_collection", "audit", "Settings", "PipelineError", "Problem"]

# The public names are imported on first use, so that `pipeline fixity` or `pipeline verify`
# does not pay for the executor's and the imaging stack's imports at every start.
_PUBLIC = {"run": "executor", "validate_collection": "executor", "audit": "fixity",
           "Settings": "stage", "PipelineError": "errors", "Problem": "errors"}


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
