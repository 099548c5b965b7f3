# src/io: sources of this subsystem (appended by its owner)
