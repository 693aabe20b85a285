"""Offline sanitizer: decode every image of a dataset tree and write clean and damaged manifests."""

__version__ = "0.1.0"
