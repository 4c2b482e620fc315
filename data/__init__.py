"""Shipped classification and index data; installed as the package ``coder._data``."""
