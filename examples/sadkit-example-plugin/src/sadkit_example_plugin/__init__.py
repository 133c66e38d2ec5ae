"""An example third-party sadkit plugin: the ``knn`` detector."""

from .knn import KNN

__all__ = ["KNN"]
