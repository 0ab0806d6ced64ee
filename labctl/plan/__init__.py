"""The pipeline behind `labctl plan` and `labctl up`: typed changes, stages, a runner with progress."""
