"""doit plumbing: task names, task dicts, uptodate checkers, state, the workspace lock."""
