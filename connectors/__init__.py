"""Async connectors that query the hub's sources at request time."""
