"""The command line: the only layer that prints. Importing it loads no command module and no heavy library."""
