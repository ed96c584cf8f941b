"""Configuration: read, schema-checked, cross-checked, then typed (see loader.py)."""

from ..docker.naming import max_env_length, service_name
from .problems import ConfigInvalid, Problem


def __getattr__(name: str):
    """load_config and validate on first use: the loader brings jsonschema and every
    check (about half of `inv --list`'s start-up), which listing tasks does not use."""
    if name in ("load_config", "validate"):
        from . import loader
        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ConfigInvalid", "Problem", "load_config", "max_env_length", "service_name", "validate"]
