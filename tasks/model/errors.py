"""The one error a user sees for a bad multiarch.yaml."""


class ManifestError(Exception):
    """A multiarch.yaml problem, rendered as one line naming the file and the key.

    ``str(ManifestError("multiarch.yaml", "images.demo.platforms", "duplicate linux/arm64"))``
    is ``multiarch.yaml: images.demo.platforms: duplicate linux/arm64``.
    """

    def __init__(self, file: str, key: str, message: str):
        super().__init__(file, key, message)
        self.file = file
        self.key = key
        self.message = message

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"
