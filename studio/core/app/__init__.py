"""What the CLI and the window share on top of the pipeline: the project file and the sample models."""
