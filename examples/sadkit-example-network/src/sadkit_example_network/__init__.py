"""An example third-party sadkit plugin: the ``tiny_mlp`` network and its autoencoder."""

from .nets import TinyDecoder, TinyMLP, tiny_mlp

__all__ = ["TinyDecoder", "TinyMLP", "tiny_mlp"]
