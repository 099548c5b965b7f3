# src/io/import.mk: importing PyTorch and SparseZoo checkpoints (and the W&B bridge tests)
