"""Alert channels: one small module per kind, each with the same three names.

- `KIND`: the name stored in AlertChannel.kind.
- `validate(config) -> list[str]`: what is wrong with a channel's configuration, for the editor and the rules
  file (empty when it can be used).
- `send(config, message) -> None`: deliver one message (webui.alerts.messages) or raise `DeliveryError`.

`SECRETS` names the configuration keys that must never be shown or logged: webhook URLs carry tokens.
"""
from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any


class DeliveryError(Exception):
    """A message was not delivered; `reason` says why, with every secret masked.

    `permanent` marks failures that trying again cannot fix (a webhook that no longer exists, a payload the
    service refuses): the outbox gives up at once instead of retrying for hours.
    """

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


MASK = "***"


def secret_values(config: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """The secret strings in `config` (under `keys`, a module's SECRETS), longest first, for `mask`."""
    values = [str(config[key]) for key in keys if config.get(key)]
    return sorted(values, key=len, reverse=True)


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def masked_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` fit to show: secret values replaced by ***."""
    module = CHANNELS.get(kind)
    keys = set(getattr(module, "SECRETS", ()))
    return {k: (MASK if k in keys and v else v) for k, v in config.items()}


from webui.alerts.channels import discord, email, pagerduty, slack, webhook  # noqa: E402 - they need DeliveryError

CHANNELS: dict[str, ModuleType] = {m.KIND: m for m in (email, slack, discord, webhook, pagerduty)}
