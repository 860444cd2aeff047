"""Developer scripts for the model zoo (these may import torch; the library never does)."""
