"""dltool: a command-line deep-learning training toolkit on its own autograd engine."""

__version__ = "0.1.0"
