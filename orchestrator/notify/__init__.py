"""Notification connectors (issue 17): who hears a ticket change, and how it is sent.

`notice` is the message, `routing` the config and the choice of channels, `backoff` the
retry timing, `email`, `webhook` and `rt` (Request Tracker 5) the senders. The outbox
and the daemon's retries live with the ticket store; these modules keep no books.
"""
