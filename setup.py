"""Packaging glue only (metadata lives in pyproject.toml): ship the top-level templates/ as labctl/templates."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["labctl", "labctl.*"]) + ["labctl.templates"],
    package_dir={"labctl.templates": "templates"},
    include_package_data=False,
)
