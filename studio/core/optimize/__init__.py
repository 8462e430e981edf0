"""One optimize: a float stage, then a finish per target, verified and reported."""
