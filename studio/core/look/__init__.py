"""Looking inside models: a structural and numeric diff of two models, and where the time of one run goes."""
