"""A structure-aware fuzz harness for heapdiff's trace reading, and the contract it holds heapdiff to.

heapdiff reads untrusted ``.etl`` files. Every input must give a result (exit 0, with a ``heapdiff: warning:`` line
whenever events were lost or data was damaged) or exit 3 with exactly one stderr line naming the file and a byte
offset: never a traceback, a hang, memory past a bound, a negative total, or fewer events than the undamaged trace
without a warning (:mod:`fuzz.contract`).

- :mod:`fuzz.seeds`     the traces mutations start from (written by heapdiff.tracegen; real samples when present)
- :mod:`fuzz.mutate`    the structure-aware mutations, deterministic from (run seed, input number)
- :mod:`fuzz.contract`  the rules, checked on one command's outcome
- :mod:`fuzz.worker`    one process: many inputs, ``info``, the main job and now and then a diff, in-process
- :mod:`fuzz.runner`    workers in parallel under a watchdog and RLIMIT_AS; failing inputs kept with reproducers
- ``python -m fuzz``    the command line (``--seconds``/``--inputs``, ``--jobs``, ``--out``, ``--replay``)

A top-level package rather than ``tests/fuzz/``: it is a tool run by hand for hours as well as by the test suite
(``tests/test_fuzz.py`` runs a fixed number of inputs), like ``benchmarks/``; pytest does not collect it, ruff and
mypy check it, and the wheel does not ship it.
"""
