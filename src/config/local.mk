# src/config: the schema, layered libconfig configuration, the CLI
