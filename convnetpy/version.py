"""convnetpy's version, in one place: the package (``convnetpy.__version__``), checkpoint
metadata and ``convnetpy --version`` read it, and pyproject.toml takes it from here."""

__version__ = "0.1.0"
