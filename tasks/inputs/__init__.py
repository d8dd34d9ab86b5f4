"""What a build depends on, hashed: build contexts as docker sends them, Dockerfiles, bases."""
