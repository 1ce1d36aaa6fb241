"""The configuration: ``sync.toml`` loaded and validated once, into frozen dataclasses.

    from syncer.config import load_config
    cfg = load_config("sync.toml")      # Config; ConfigError names the key and the fix

:mod:`syncer.config.model` holds the dataclasses, :mod:`syncer.config.parse` the validation.
"""

from __future__ import annotations

from syncer.config.model import FORMATS, SNOWFLAKE_KEYS, Config, Reference, SourceConfig, TableConfig
from syncer.config.parse import default_config_path, load_config, parse_config

__all__ = [
    "FORMATS",
    "SNOWFLAKE_KEYS",
    "Config",
    "Reference",
    "SourceConfig",
    "TableConfig",
    "default_config_path",
    "load_config",
    "parse_config",
]
