"""sonocli: a software data concentrator for wired and wireless M-Bus meters.

Kept import-free on purpose: the CLI start-up time on slow ARM boxes is part of the product.
"""

__version__ = "0.1.0"
