# src/backend/cpu: sources of this subsystem (appended by its owner)
