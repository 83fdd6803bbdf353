"""Synthetic traces: a writer of faithful ``.etl`` files and simulated programs that leak.

Test, demo and benchmark tooling, installed with heapdiff so that users can write demo traces too; nothing in
the tool itself imports it.
"""
