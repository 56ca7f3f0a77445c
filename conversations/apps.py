from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"

    def ready(self) -> None:
        # Register the Celery tasks by name in every process (the web process too):
        # services enqueue them by name through conversations.task_queue.
        from conversations import tasks  # noqa: F401
