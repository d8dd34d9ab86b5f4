"""Docker engines: the CLI, the Engine API, SDK clients, builder nodes and their facts."""
