"""Webhook routes (filled in by channels_app.views)."""

urlpatterns: list = []
