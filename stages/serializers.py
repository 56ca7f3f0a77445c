"""API shapes for stages."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from icmp.api.serializers import StrictFieldsMixin
from stages.models import Stage
from stages.selectors import stage_templates_resolve
from templates_app.models import PromptTemplate
from templates_app.selectors import TemplateSource, template_defaults_get, template_list


class TemplateRefField(serializers.PrimaryKeyRelatedField):
    """A template id the caller's business may use: its own templates or the platform's."""

    default_error_messages = {
        "does_not_exist": "Template not found.",
        "incorrect_type": "Must be a template id.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("pk_field", serializers.UUIDField())
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(queryset=PromptTemplate.objects.none(), **kwargs)

    def get_queryset(self):
        return template_list(business=self.context["business"], include_platform=True)


@extend_schema_field({"type": "object", "additionalProperties": True})
class DataSchemaField(serializers.JSONField):
    """A JSON Schema document: always an object."""


class EffectiveTemplateSerializer(serializers.Serializer):
    """The template used for one kind; all null when there is none at all."""

    id = serializers.UUIDField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    source = serializers.ChoiceField(
        choices=[s.value for s in TemplateSource],
        allow_null=True,
        help_text="stage: the stage's own; business_default / platform_default: the fallback used.",
    )


class EffectiveTemplatesSerializer(serializers.Serializer):
    """Per template kind, the template a stage uses."""

    stage_selection = EffectiveTemplateSerializer()
    data_extraction = EffectiveTemplateSerializer()
    response_generation = EffectiveTemplateSerializer()


class StageSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A stage of the business's conversations and the templates it uses."""

    data_schema = DataSchemaField(
        required=False,
        help_text='JSON Schema (draft 2020-12) with "type": "object", or {} to collect nothing.',
    )
    selection_template = TemplateRefField(help_text="A stage_selection template, or null for the default.")
    extraction_template = TemplateRefField(help_text="A data_extraction template, or null for the default.")
    response_template = TemplateRefField(help_text="A response_generation template, or null for the default.")
    effective_templates = serializers.SerializerMethodField(
        help_text="Per kind, the template this stage uses and where it comes from."
    )

    class Meta:
        model = Stage
        fields = [
            "id",
            "key",
            "name",
            "description",
            "order",
            "is_initial",
            "is_handoff",
            "data_schema",
            "selection_template",
            "extraction_template",
            "response_template",
            "effective_templates",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "key": {"help_text": "A slug, unique in the business; the stage selector answers with it."},
            "is_initial": {"help_text": "Setting it clears the flag on the business's other stages."},
        }
        # Uniqueness is checked by the services, scoped to the caller's business.
        validators: list = []

    @extend_schema_field(EffectiveTemplatesSerializer)
    def get_effective_templates(self, stage: Stage) -> dict[str, Any]:
        # A list resolves many stages of one business: read the defaults once per request.
        defaults = self.context.get("_template_defaults")
        if defaults is None:
            business = self.context.get("business") or stage.business
            defaults = self.context["_template_defaults"] = template_defaults_get(business=business)
        resolved = stage_templates_resolve(stage=stage, defaults=defaults)
        return {
            kind: {
                "id": r.template.pk if r.template else None,
                "name": r.template.name if r.template else None,
                "version": r.template.version if r.template else None,
                "source": r.source.value if r.source else None,
            }
            for kind, r in resolved.items()
        }
