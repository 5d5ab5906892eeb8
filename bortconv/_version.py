"""The package version: a leaf, so the manifest and the CLI can record it without importing the facade."""

__version__ = "0.1.0"
