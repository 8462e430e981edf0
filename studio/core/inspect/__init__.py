"""Reading a model file: format detection and one inspector per format into a ModelInfo."""
