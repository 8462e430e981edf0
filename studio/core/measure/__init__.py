"""Running models: runtimes, output comparison, accuracy and latency evaluation."""
