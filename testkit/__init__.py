"""The test kit: the mock harness, the engine plan, the real-engine applier."""
