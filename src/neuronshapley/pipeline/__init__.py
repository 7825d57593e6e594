"""From files to results: loading models and data, the run, the demo."""
