"""Tests of components/database."""
