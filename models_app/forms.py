"""The admin's forms for model versions: what the console asks for besides a version's own fields (its
file, the sha256 the operator expects, whether to make it the default) and the deploy action's target.
A version's own fields are the model's, with the model's rules: a ModelForm runs the model fields'
validators, the very ones the API's serializers and the services apply."""

from __future__ import annotations

from django import forms

from deployments_app import selectors as deployment_selectors
from models_app import services
from models_app.models import ModelVersion
from registry_site.forms import StrictJSONField
from registry_site.validators import validate_sha256_hex

JSON_FIELDS = ("input_shape", "output_shape", "training_config", "deployment_config")
JSON_OBJECT_FIELDS = ("training_config", "deployment_config")


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
    sha256 = forms.CharField(
        required=False,
        validators=[validate_sha256_hex],
        label="Expected sha256",
        help_text="Optional: if the file's sha256 differs, nothing is stored.",
    )

    class Meta:
        model = ModelVersion
        fields = ("model", "version", *sorted(services.EDITABLE_VERSION_FIELDS))
        field_classes = dict.fromkeys(JSON_FIELDS, StrictJSONField)
        labels = {"f1_score": "F1 score"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in JSON_OBJECT_FIELDS:
            if name in self.fields:
                # Django renders a hidden copy of a callable default's value to detect changes; {} is
                # no moment's value, so compare with the version's own, as for every other field.
                self.fields[name].show_hidden_initial = False

    def clean(self):
        cleaned = super().clean()
        for name in JSON_OBJECT_FIELDS:
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = {}  # an empty box is an empty object, the model's default
        if cleaned.get("sha256") and not cleaned.get("file"):
            self.add_error("sha256", "Only meaningful with a file.")
        return cleaned


def target_choices() -> list[tuple[str, str]]:
    """The known targets, in display order; a protected one says so (it needs the deployer role)."""
    return [
        (target.name, f"{target.name} (protected)" if target.protected else target.name)
        for target in deployment_selectors.targets()
    ]


class DeployForm(forms.Form):
    target = forms.ChoiceField(
        choices=target_choices,
        help_text="The version becomes the model's active deployment there. Targets are managed under "
        "Deployments › Targets.",
    )
