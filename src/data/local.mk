# src/data: sources of this subsystem (appended by its owner)
