"""Manifest model and doit task generation: multiarch.yaml in, doit task dicts out."""
