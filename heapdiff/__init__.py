"""heapdiff: heap leaks of Windows programs from ETW heap traces, diffed across runs, as a shareable report."""

__version__ = "0.1.0"
