"""Pure functions on arrays: windowing, presets, overlays, encoding. No HTTP, no database."""
