"""Tests that deploy the real program on a real Docker engine (a package, so its modules can share helpers)."""
