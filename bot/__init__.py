"""kbot: a self-hosted knowledge assistant that answers from your documents and learns from feedback."""

__version__ = "0.1.0"
