from labctl.cli.main import entry

entry()
