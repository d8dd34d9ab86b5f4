"""Everything that talks to Docker and the registry: one module per stage."""
