"""One module per command: each takes opened traces (or documents) and options and returns what the shell writes.

``report`` is the main job (one trace, or a diff of two), ``info`` describes a trace; the CLI only parses
arguments, maps errors to exit codes and calls them.
"""
