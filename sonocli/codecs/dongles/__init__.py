"""dongles package."""
