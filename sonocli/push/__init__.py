"""push package."""
