"""The trade-off sweep: candidates, scheduling, sensitivity, Pareto front and plot."""
