# data-tools: icsparse-convert and dataset tools
