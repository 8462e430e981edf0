"""A model's inputs and outputs (name, dtype, shape with named dynamic dims) and the shapes they are run at."""
