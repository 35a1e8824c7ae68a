"""Call tracking service: tracking-number pools, leasing, attribution and callbacks."""

__version__ = "0.1.0"
