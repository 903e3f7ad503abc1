"""Alerts: rules turn detectors' findings into incidents (engine, runner), and notifications go out through
channels (email, Slack, Discord, webhook, PagerDuty) via the outbox (notifier)."""
