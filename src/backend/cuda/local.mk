# src/backend/cuda: sources of this subsystem (appended by its owner)
