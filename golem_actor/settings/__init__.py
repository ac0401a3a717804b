"""The node's settings: one typed object, layered from defaults, ``.env``, environment, CLI.

Why: configuration mistakes must stop the node at start with a message naming the variable,
and the rest of the code must read settings from one frozen, typed object.
"""

from __future__ import annotations

from ._errors import SettingsError
from ._load import LoadedSettings, load_settings, resolve_settings
from ._model import ENV_PREFIX, ZERO_ADDRESS, Settings, cli_flag, env_var_name

__all__ = [
    "ENV_PREFIX",
    "ZERO_ADDRESS",
    "LoadedSettings",
    "Settings",
    "SettingsError",
    "cli_flag",
    "env_var_name",
    "load_settings",
    "resolve_settings",
]
