"""API shapes for prompt templates, their versions and previews."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from icmp.api.serializers import StrictFieldsMixin
from templates_app.models import PromptTemplate


class TemplateSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A prompt template: yours, or (read-only) a platform default."""

    is_platform = serializers.BooleanField(
        read_only=True, help_text="True for platform defaults, which are read-only here."
    )

    class Meta:
        model = PromptTemplate
        fields = [
            "id",
            "kind",
            "name",
            "description",
            "content",
            "is_default",
            "version",
            "is_platform",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "version", "is_platform", "created_at", "updated_at"]
        extra_kwargs = {
            "kind": {"help_text": "Set at creation; cannot change afterwards."},
            "content": {
                "help_text": "Jinja2 rendered in a sandbox; only the variables of the kind may be used."
            },
            "version": {"help_text": "Starts at 1 and goes up by one each time the content changes."},
        }
        # Uniqueness is checked by the services, scoped to the caller's business.
        validators: list = []


class TemplateVersionSerializer(serializers.Serializer):
    """One saved state of a template; `change_type` is + created, ~ changed, - deleted."""

    version = serializers.IntegerField()
    content = serializers.CharField()
    name = serializers.CharField()
    is_default = serializers.BooleanField()
    changed_at = serializers.DateTimeField(source="history_date")
    changed_by = serializers.SerializerMethodField(
        help_text="Email of the staff member, or null for API keys."
    )
    change_type = serializers.ChoiceField(
        source="history_type",
        choices=[("+", "created"), ("~", "changed"), ("-", "deleted")],
    )

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_changed_by(self, record) -> str | None:
        user = record.history_user
        return (user.email or None) if user is not None else None


class TemplatePreviewSerializer(StrictFieldsMixin, serializers.Serializer):
    """What to render with; all optional. Nothing is saved."""

    conversation = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Render with this conversation's stage, agent, contact and collected data.",
    )
    stage = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Render for this stage (default: the conversation's stage, else the initial stage).",
    )
    sample = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Render with the built-in sample data instead of the business's own.",
    )


class TemplatePreviewResultSerializer(serializers.Serializer):
    """The rendered text and the variables templates of this kind may use."""

    rendered = serializers.CharField()
    variables = serializers.ListField(
        child=serializers.CharField(), help_text="The variables templates of this kind may use."
    )
