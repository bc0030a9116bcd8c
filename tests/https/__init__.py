"""Tests of components/https."""
