"""Packaging details pyproject.toml cannot say: the schemas (schemas/) and the verb CLI
(bin/phoenix) ship inside the package, as `phoenix_tasks._schemas` and
`phoenix_tasks._bin`, so that an installed Phoenix (pip, pipx) validates and runs
without the checkout (phoenix_tasks/core/paths.py finds them there)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["phoenix_tasks", "phoenix_tasks.*"]) + ["phoenix_tasks._schemas",
                                                                           "phoenix_tasks._bin"],
    package_dir={"phoenix_tasks._schemas": "schemas", "phoenix_tasks._bin": "bin"},
    package_data={
        "phoenix_tasks._schemas": ["*.json", "compose/*.json", "compose/*.md", "compose/docker-cli/*.json"],
        "phoenix_tasks._bin": ["phoenix"],
    },
)
