"""REST routes of this app (filled in by its apis module)."""

urlpatterns: list = []
