"""The platforms, one notifier each, behind one protocol (`base.Notifier`), like Alertmanager's.

Each notifier holds its platform's facts: how a message looks, how it is signed, its default
rate (messages a minute), its size limit and what its error codes mean (retry or not). The
registry maps a channel's ``type`` in ``alerts.channels`` to its notifier class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from forecaster.alerts.notifiers.base import Delivery, Mentions, Notifier, body_bytes
from forecaster.alerts.notifiers.console import Console
from forecaster.alerts.notifiers.dingtalk import DingTalk, dingtalk_sign
from forecaster.alerts.notifiers.feishu import Feishu, feishu_sign
from forecaster.alerts.notifiers.webhook import Webhook, webhook_signature
from forecaster.alerts.notifiers.wecom import WeCom
from forecaster.vocab import CHANNEL_TYPES

if TYPE_CHECKING:
    from forecaster.config import ChannelConfig

__all__ = [
    "NOTIFIERS",
    "Delivery",
    "Mentions",
    "Notifier",
    "body_bytes",
    "dingtalk_sign",
    "feishu_sign",
    "webhook_signature",
    "notifier_class",
    "make_notifier",
]

NOTIFIERS: dict[str, type] = {cls.type: cls for cls in (DingTalk, WeCom, Feishu, Webhook, Console)}
assert tuple(NOTIFIERS) == CHANNEL_TYPES  # one notifier for every channel type config accepts


def notifier_class(type_: str) -> type:
    """The notifier for a channel type (a `KeyError` for a type no notifier serves)."""
    return NOTIFIERS[type_]


def make_notifier(name: str, config: ChannelConfig, *, stream: TextIO | None = None) -> Notifier:
    return notifier_class(config.type)(name=name, config=config, stream=stream)
