"""The urban-twin data hub: a federated OGC API layer over live Dutch sources."""

__version__ = "0.1.0"
API_VERSION = "1.0.0"
