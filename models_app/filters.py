"""Query parameters of the model and version lists (the seed's filters)."""

import django_filters

from models_app.models import ModelFormat, ModelType, ModelVersion, RegisteredModel, VersionStatus
from registry_site.filters import StrictBooleanFilter, choice_filter


class RegisteredModelFilter(django_filters.FilterSet):
    model_type = choice_filter(ModelType.choices)
    is_active = StrictBooleanFilter()

    class Meta:
        model = RegisteredModel
        fields = ["model_type", "is_active"]


class ModelVersionFilter(django_filters.FilterSet):
    status = choice_filter(VersionStatus.choices)
    is_default = StrictBooleanFilter()
    format = choice_filter(ModelFormat.choices)

    class Meta:
        model = ModelVersion
        fields = ["status", "is_default", "format"]
