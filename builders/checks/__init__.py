"""Checks before work: the registries' preflight, and `doit doctor`."""
