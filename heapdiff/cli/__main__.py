"""``python -m heapdiff.cli``: the same entry point as the ``heapdiff`` command."""

from heapdiff.cli import main

main()
