"""Tests of components/settings."""
