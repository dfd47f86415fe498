import os

from sb3_denoise_pg import envs  # noqa: F401  (registers the project's gymnasium ids)
from sb3_denoise_pg.denoise_pg import DenoisePG

# Read version from file
version_file = os.path.join(os.path.dirname(__file__), "version.txt")
with open(version_file) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = ["DenoisePG", "__version__"]
