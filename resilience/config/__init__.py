"""The TOML configuration: `load` reads and validates it, `schema` holds the frozen objects,
`checks` the cross-section rules, `access` the lookups the gateway makes per request."""

from resilience.config.load import check_config, load_config, parse_config
from resilience.config.schema import (
    AdminToken,
    Config,
    ConfigError,
    ProviderConfig,
    ServerConfig,
    TenantConfig,
)

__all__ = [
    "AdminToken",
    "Config",
    "ConfigError",
    "ProviderConfig",
    "ServerConfig",
    "TenantConfig",
    "check_config",
    "load_config",
    "parse_config",
]
