"""Scripts run inside containers (read as text by the components)."""
