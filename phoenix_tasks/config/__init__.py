"""Configuration: read, schema-checked, cross-checked, then typed (see loader.py)."""

from ..docker.naming import max_env_length, service_name
from .loader import load_config, validate
from .problems import ConfigInvalid, Problem

__all__ = ["ConfigInvalid", "Problem", "load_config", "max_env_length", "service_name", "validate"]
