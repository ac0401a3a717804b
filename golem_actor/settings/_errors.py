"""The one error type of the settings loader.

Why: a misconfigured node must fail at start with a message an operator can act on, so every
error carries the exact name the operator typed (``GOLEM_PROVIDER_PORT``, ``--port``, a key of
the defaults file) and where it came from (the environment, a line of a ``.env`` file, the
command line).
"""

from __future__ import annotations


class SettingsError(Exception):
    """An invalid, unknown or inconsistent setting.

    ``variable`` is the name as written by the operator, ``source`` where it was found.
    ``str(error)`` reads ``"<variable> (<source>): <problem>"``.
    """

    def __init__(self, variable: str, source: str, problem: str) -> None:
        super().__init__(f"{variable} ({source}): {problem}")
        self.variable = variable
        self.source = source
        self.problem = problem
