"""The manifest model: multiarch.yaml parsed and checked; imports nothing outside itself."""
