"""Notifications: email over SMTP and signed webhooks for custom extensions."""
