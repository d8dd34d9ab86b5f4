"""The stages a task runs: build, push, manifest list, buildx, export, inspect."""
