"""An example third-party sadkit plugin: the ``sensors`` dataset, reading its author's own CSV file."""

from .sensors import Sensors

__all__ = ["Sensors"]
