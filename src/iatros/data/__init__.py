"""Data: the data home (read-only root, downloads with checksums), sources and splits."""
