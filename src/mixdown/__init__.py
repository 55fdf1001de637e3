"""mixdown: automatic multitrack mixing with editable console settings."""

__version__ = "0.1.0"
