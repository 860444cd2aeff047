"""absl-flag launch scripts: the main job (``reproduce``), studies, benchmarks, validation."""
