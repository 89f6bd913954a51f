"""SIGHUP: the gateway re-reads its config file and applies what may change while serving.

    kill -HUP <pid of resilience serve>

The new file is validated whole first (`load_config`: parsing and every cross-section
check), then checked against what is running: a route or tenant naming a provider this
process does not have is refused (a new provider needs a restart). A refused file changes
nothing; the log names the offending key (the `ConfigError`: `"<key path>: <problem>"`)
and the previous config keeps serving.

What a reload changes: tenants (gateway keys and policies), routes, admin tokens. They are
swapped in one step of the event loop, with no await between the swaps: a request sees the
old set or the new one, never a mix. What needs a restart (`server`, `providers`,
`breaker`, `retry`, `bulkhead`, `alerts`; the environment is read at start only) is logged as
"needs a restart" and left as it was; later reloads keep saying so until the process is
restarted.

Under `resilience serve --workers N`, uvicorn's supervisor takes SIGHUP itself and replaces
its workers one by one, each reading the file as it starts; a worker that cannot start
(a bad file) is not brought in and the old one keeps serving. A SIGHUP sent to one worker
reloads that worker in place, as here.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.applications import Starlette

from resilience.client.resilient import ResilientClient
from resilience.config.load import load_config
from resilience.config.schema import Config, ConfigError
from resilience.embed.admin import replace_tokens
from resilience.tenancy.directory import ConfigTenants

logger = logging.getLogger("resilience.gateway")

RESTART_SECTIONS = ("server", "breaker", "retry", "bulkhead", "alerts")
"""Sections whose change needs a restart, besides `providers` (reported per provider)."""


@dataclass(frozen=True, slots=True)
class Reload:
    """What a reload did."""

    config: Config
    """What serves now: the file's tenants, routes and admin tokens, the rest as started."""
    applied: tuple[str, ...]
    """The live sections that changed and now serve: `tenants`, `routes`, `admin.tokens`."""
    needs_restart: tuple[str, ...]
    """Sections (`providers.NAME` for a provider) that differ in the file, left as they were."""


def plan(current: Config, new: Config, providers: Collection[str]) -> Reload:
    """What reloading `new` over `current` does, in a process running `providers`.

    Raises `ConfigError` at the first key naming a provider that is not running."""
    _check_providers(new, providers)
    restart = [s for s in RESTART_SECTIONS if getattr(current, s) != getattr(new, s)]
    names = sorted({*current.providers, *new.providers})
    restart += [f"providers.{n}" for n in names if current.providers.get(n) != new.providers.get(n)]
    applied = [
        section
        for section, changed in (
            ("tenants", current.tenants != new.tenants),
            ("routes", current.routes != new.routes),
            ("admin.tokens", current.admin_tokens != new.admin_tokens),
        )
        if changed
    ]
    serving = replace(
        current,
        routes=new.routes,
        tenants=new.tenants,
        admin_tokens=new.admin_tokens,
        source=new.source,
        warnings=new.warnings,
    )
    return Reload(serving, tuple(applied), tuple(restart))


def _check_providers(config: Config, running: Collection[str]) -> None:
    def check(where: str, named: Iterator[str]) -> None:
        for provider in named:
            if provider not in running:
                raise ConfigError(
                    where,
                    f"provider {provider!r} is not running here: a new provider needs a restart",
                    source=config.source,
                )

    for name, route in config.routes.items():
        check(f"routes.{name}", (t.provider for t in route.iter_targets()))
    for tenant_id, tenant in config.tenants.items():
        path = f"tenants.{tenant_id}"
        for name, route in tenant.routes.items():
            check(f"{path}.routes.{name}", (t.provider for t in route.iter_targets()))
        for provider in sorted(
            {*tenant.provider_keys, *tenant.rpm, *tenant.tpm, *tenant.max_concurrent}
        ):
            check(f"{path}.providers.{provider}", iter((provider,)))


class ConfigReloader:
    """Re-reads `path` and applies it to the running gateway's parts.

    Args:
        path: the config file the gateway started from.
        environ: the environment the gateway started with (variables the file names).
        config: what serves now.
        client: the gateway's client (its routes; its providers, to check the file against).
        tenants: the `ConfigTenants` both the resolver and the client ask.
        admin: the mounted admin app (`resilience.embed.admin_app`), for its tokens.
    """

    def __init__(
        self,
        path: str,
        *,
        environ: Mapping[str, str],
        config: Config,
        client: ResilientClient,
        tenants: ConfigTenants,
        admin: Starlette | None = None,
    ) -> None:
        self.path = path
        self.environ = environ
        self._config = config
        self._client = client
        self._tenants = tenants
        self._admin = admin
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def config(self) -> Config:
        """What serves now."""
        return self._config

    async def reload(self) -> Reload:
        """Read, validate and apply the file. Raises `ConfigError` (or `OSError`, when the
        file cannot be read) having changed nothing."""
        async with self._lock:  # one reload at a time: a second SIGHUP waits its turn
            new = await asyncio.to_thread(load_config, self.path, environ=self.environ)
            done = plan(self._config, new, self._client.providers)
            self._apply(done.config)
            return done

    def _apply(self, config: Config) -> None:
        """Every swap in one step: no await, so no request runs between them. What can
        refuse (the token set, the tenant tables) is built before anything is replaced."""
        if self._admin is not None:
            replace_tokens(self._admin, config.admin_tokens)
        self._tenants.replace(config)
        self._client.routes = dict(config.routes)
        self._config = config

    async def reload_and_log(self) -> Reload | None:
        """`reload`, reporting to the log instead of raising: what a SIGHUP runs."""
        try:
            done = await self.reload()
        except ConfigError as exc:
            logger.error("config reload refused, the previous config keeps serving: %s", exc)
            return None
        except OSError as exc:
            logger.error(
                "config reload refused, the previous config keeps serving: %s: cannot read "
                "the file (%s)",
                self.path,
                exc.strerror or exc,
            )
            return None
        for section in done.needs_restart:
            logger.warning(
                "config reload: %s changed in the file; needs a restart (left as it was)",
                section,
            )
        for warning in done.config.warnings:
            logger.warning("config reload: %s", warning)
        config = done.config
        logger.info(
            "config reloaded from %s: %s (%d tenants, %d routes, %d admin tokens)",
            self.path,
            ", ".join(done.applied) + " applied" if done.applied else "no live change",
            len(config.tenants),
            len(config.routes),
            len(config.admin_tokens),
        )
        return done

    def install(self) -> Callable[[], None]:
        """Reload on SIGHUP, where this process can take it (Unix, the main thread's loop);
        returns what undoes it (the previous handler comes back)."""
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None or threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(sighup)
        try:
            loop.add_signal_handler(sighup, self._on_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            return lambda: None

        def uninstall() -> None:
            loop.remove_signal_handler(sighup)
            if previous is not None:
                signal.signal(sighup, previous)

        return uninstall

    def _on_signal(self) -> None:
        logger.info("SIGHUP: reloading the config from %s", self.path)
        task = asyncio.get_running_loop().create_task(self.reload_and_log())
        self._tasks.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)
