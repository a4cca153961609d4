"""doorctl: the door controller (decision logic and daemon)."""

__version__ = "0.1.0"
