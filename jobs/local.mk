# jobs: sources of this subsystem (appended by its owner)
