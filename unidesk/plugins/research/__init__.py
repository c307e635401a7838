"""Research plugin: experiments, runs, metrics, sweeps (being built)."""
