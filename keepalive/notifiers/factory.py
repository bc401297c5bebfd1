"""Builds the enabled channels from the settings."""

from __future__ import annotations

from collections.abc import Sequence

import requests

from keepalive.config import Settings
from keepalive.notifiers.alertmanager import AlertmanagerNotifier, book_at
from keepalive.notifiers.apprise_channel import AppriseNotifier
from keepalive.notifiers.base import Notifier
from keepalive.notifiers.email import EmailNotifier
from keepalive.notifiers.log import LogNotifier
from keepalive.notifiers.telegram import TelegramNotifier
from keepalive.notifiers.webhook import WebhookNotifier


def build_notifiers(settings: Settings, session: requests.Session | None = None) -> list[Notifier]:
    """The log channel always, then Telegram and e-mail when their settings turn them on."""
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.telegram.enabled and settings.telegram_bot_token:
        notifiers.append(
            TelegramNotifier(
                settings.telegram_bot_token,
                settings.telegram_chat_ids,
                settings.telegram_api_url,
                session=session,
                silent_recovery=settings.keep.telegram_silent_recovery,
            )
        )
    if settings.email.enabled and settings.smtp_server and settings.email_sender:
        notifiers.append(
            EmailNotifier(
                server=settings.smtp_server,
                port=settings.smtp_port,
                security=settings.smtp_security,
                username=settings.smtp_username,
                password=settings.smtp_password,
                sender=settings.email_sender,
                recipients=settings.email_recipients,
                ca_file=settings.smtp_ca_file,
            )
        )
    notifiers.extend(fanout_notifiers(settings, session))
    return notifiers


def fanout_notifiers(settings: Settings, session: requests.Session | None = None) -> list[Notifier]:
    """The channels of SPEC 17 that their settings turn on: webhooks, Apprise, Alertmanager."""
    fanout = settings.fanout
    built: list[Notifier] = []
    if fanout.webhook_urls:
        built.append(WebhookNotifier(fanout.webhook_urls, fanout.webhook_secret, session=session))
    if fanout.apprise_urls:
        built.append(AppriseNotifier(fanout.apprise_urls))
    if fanout.alertmanager_urls:
        built.append(
            AlertmanagerNotifier(
                fanout.alertmanager_urls,
                settings.targets,
                fanout.monitor_name,
                book=book_at(settings.state_dir),
                session=session,
            )
        )
    return built


def routes(notifiers: Sequence[Notifier]) -> list[tuple[str, str]]:
    """Every (channel, recipient) pair an alert is delivered to."""
    return [(n.channel, recipient) for n in notifiers for recipient in n.recipients()]
