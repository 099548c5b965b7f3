# src/log: sources of this subsystem (appended by its owner)
