"""Registries over HTTP: the v2 client, what tags hold, content tags, bounded retries."""
