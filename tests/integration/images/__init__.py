"""Stand-in images for the integration tests; see :mod:`build`."""
