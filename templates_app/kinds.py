"""The three kinds of prompt template, apart from the model so that pure code can name them."""

from django.db.models import TextChoices


class TemplateKind(TextChoices):
    STAGE_SELECTION = "stage_selection", "Stage selection"
    DATA_EXTRACTION = "data_extraction", "Data extraction"
    RESPONSE_GENERATION = "response_generation", "Response generation"
