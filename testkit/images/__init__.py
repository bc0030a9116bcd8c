"""Registry-free test images built from Debian packages (`python -m testkit.images.build`)."""
