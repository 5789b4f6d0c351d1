"""Notifications: connectors that tell people about tickets (mail, webhooks, Request Tracker)."""
