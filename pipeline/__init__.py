"""preservation-pipeline: sealed, standards-conformant preservation packages from photographs.

Public API (prints nothing, never exits, raises only `PipelineError` subclasses):
    run(collection, output, settings)          every stage; returns a RunResult
    validate_collection(collection, settings)  discover + validate; returns the Package
    audit(paths, output=, db=, budget=...)     fixity audit of stored bags; returns an AuditReport
"""
__version__ = "0.1.0"

from .errors import PipelineError, Problem  # noqa: E402
from .executor import run, validate_collection  # noqa: E402
from .fixity import audit  # noqa: E402
from .stage import Settings  # noqa: E402

__all__ = ["__version__", "run", "validate_collection", "audit", "Settings", "PipelineError", "Problem"]
