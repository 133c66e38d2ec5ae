"""Built-in datasets: ODDS tables (``odds``) and a small synthetic tabular set (``synthetic``).

Image datasets (MNIST, Fashion-MNIST, CIFAR-10) live in ``images.py``. Every dataset returns
``(train, val, test)`` :class:`sadkit.data.Split` objects drawn with the shared protocol of
:mod:`sadkit.data`.
"""
