"""The admin's forms for model versions: what the console asks for besides a version's own fields (its
file, the sha256 the operator expects, whether to make it the default) and the deploy action's target.
Each value is checked with the API's own rules, so the console accepts exactly what the API does."""

from __future__ import annotations

from django import forms
from rest_framework import serializers

from deployments_app.models import target_validator
from models_app import services
from models_app.models import ModelVersion
from registry_site.fields import JSONObjectField, ShapeField
from registry_site.forms import StrictJSONField


def _api_field_clean(field: serializers.Field, value):
    """Validate a value with the API's own serializer field, so the admin accepts exactly what the API does."""
    try:
        return field.run_validation(value)
    except serializers.ValidationError as exc:
        raise forms.ValidationError([str(message) for message in exc.detail]) from None


def metric_field(label: str) -> forms.FloatField:
    # Django's FloatField refuses "nan", "inf" and 1e400 (which is inf); the bounds are the API's.
    return forms.FloatField(required=False, min_value=0.0, max_value=1.0, label=label)


class ModelVersionForm(forms.ModelForm):
    # Not columns: what the services take besides a version's fields.
    FORM_ONLY_FIELDS = ("make_default", "file", "sha256")

    make_default = forms.BooleanField(
        required=False,
        label="Make default",
        help_text="Make this the model's default version; the current default stops being it.",
    )
    file = forms.FileField(
        required=False,
        help_text="Optional. Stored under its sha256; a version's file is attached once and never changes.",
    )
    sha256 = forms.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        label="Expected sha256",
        help_text="Optional: if the file's sha256 differs, nothing is stored.",
        error_messages={"invalid": "Must be 64 hexadecimal digits."},
    )
    accuracy = metric_field("accuracy")
    precision = metric_field("precision")
    recall = metric_field("recall")
    f1_score = metric_field("F1 score")
    mAP = metric_field("mAP")
    input_shape = StrictJSONField(
        required=False, help_text="JSON list such as [1, 3, 224, 224]; -1 or null marks a dynamic dimension."
    )
    output_shape = StrictJSONField(required=False, help_text="JSON list such as [1, 1000].")
    training_config = StrictJSONField(required=False, help_text='JSON object such as {"epochs": 90}.')
    deployment_config = StrictJSONField(
        required=False, help_text="JSON object; a deployment uses it unless given its own."
    )
    release_notes = forms.CharField(required=False, max_length=100_000, widget=forms.Textarea)  # as the API

    class Meta:
        model = ModelVersion
        fields = ("model", "version", *sorted(services.EDITABLE_VERSION_FIELDS))

    def clean_input_shape(self):
        return _api_field_clean(ShapeField(allow_null=True), self.cleaned_data.get("input_shape"))

    def clean_output_shape(self):
        return _api_field_clean(ShapeField(allow_null=True), self.cleaned_data.get("output_shape"))

    def _clean_json_object(self, name: str) -> dict:
        value = self.cleaned_data.get(name)
        if value in (None, ""):
            return {}
        return _api_field_clean(JSONObjectField(), value)

    def clean_training_config(self):
        return self._clean_json_object("training_config")

    def clean_deployment_config(self):
        return self._clean_json_object("deployment_config")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("sha256") and not cleaned.get("file"):
            self.add_error("sha256", "Only meaningful with a file.")
        return cleaned


class DeployForm(forms.Form):
    target = forms.CharField(
        max_length=64,
        validators=[target_validator],
        help_text="Such as production or staging. The version becomes the model's active deployment there.",
    )
