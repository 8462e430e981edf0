"""What to do to a model: recipes (one candidate) and grids (a sweep), saved as TOML."""
