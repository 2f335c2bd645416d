"""Rendering service: item → windowed, annotated, encoded image (with the two caches of PERFORMANCE.md)."""
