# src/train: sources of this subsystem (appended by its owner)
