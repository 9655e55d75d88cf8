"""selfplay: a self-play generator of verified reasoning data."""

__version__ = "0.1.0"
