"""CLI commands of each service, registered onto the groups of mamori.cli."""
