"""The paper's networks: ODDS MLPs (and, later, the image LeNets), each with its autoencoder."""
