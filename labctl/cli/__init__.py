"""Command-line interface: one module per subcommand, `main.py` maps errors to exit statuses."""
