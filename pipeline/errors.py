"""Sieve's exceptions.

::

    SieveError
    ├── ConfigError          a setting has a value Sieve cannot accept (names setting, value, accepted)
    ├── DatabaseError        the embedded Postgres could not start, or a DSN could not be reached
    ├── MigrationError       a migration failed, or an applied migration was edited afterwards
    ├── ListenError          a port Sieve was asked to listen on is taken or not allowed (names the setting)
    └── UsageError           a command's argument cannot be used (`sieve trace not-an-id`): says what would be

Telemetry code paths (span processors, exporters, instrumentation hooks) never raise into the application:
they count and log. These exceptions are for start-up and for commands.
"""

from __future__ import annotations


class SieveError(Exception):
    """Base of every error Sieve raises on purpose."""


class ConfigError(SieveError, ValueError):
    """A bad setting. The message names the setting, the offending value and what would be accepted."""

    def __init__(self, setting: str, value: object, accepted: str) -> None:
        self.setting = setting
        self.value = value
        self.accepted = accepted
        super().__init__(f"invalid setting {setting}={value!r}: expected {accepted}")


class DatabaseError(SieveError):
    """Postgres is not available (embedded server failed to start, or the DSN is unreachable)."""


class MigrationError(SieveError):
    """A migration failed or an applied migration's file changed since it ran."""


class ListenError(SieveError):
    """A server socket could not be opened: the message names the address, the setting and the cause."""

    def __init__(self, host: str, port: int, setting: str, cause: OSError) -> None:
        self.host, self.port, self.setting = host, port, setting
        reason = (cause.strerror or str(cause)).lower()
        super().__init__(f"cannot listen on {host}:{port} ({setting}): {reason}")


class UsageError(SieveError, ValueError):
    """A command-line argument Sieve cannot use; the message names it and what would be accepted."""
