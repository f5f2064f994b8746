"""The admin's forms for model versions: what the console asks for besides a version's own fields (its
file, the sha256 the operator expects, whether to make it the default) and the deploy action's target.
A version's own fields are the model's, with the model's rules: a ModelForm runs the model fields'
validators, the very ones the API's serializers and the services apply."""

from __future__ import annotations

from django import forms

from deployments_app import selectors as deployment_selectors
from models_app import open_metadata, services
from models_app.models import ModelVersion
from registry_site.forms import StrictJSONField
from registry_site.validators import validate_metrics, validate_sha256_hex, validate_tags

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
    # Not columns either: rows of their own (models_app.open_metadata), edited here as whole maps.
    metrics = StrictJSONField(
        required=False,
        validators=[validate_metrics],
        label="Other metrics",
        help_text='JSON object of named metrics besides the five above, any finite number: {"auc": 0.91}.',
    )
    tags = StrictJSONField(
        required=False, validators=[validate_tags], help_text='JSON object of text values: {"team": "vision"}.'
    )

    class Meta:
        model = ModelVersion
        fields = ("model", "version", *sorted(services.EDITABLE_VERSION_FIELDS))
        field_classes = dict.fromkeys(JSON_FIELDS, StrictJSONField)
        labels = {"f1_score": "F1 score"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["metrics"] = open_metadata.metrics_of(self.instance)
            self.initial["tags"] = open_metadata.tags_of(self.instance)
        for name in JSON_OBJECT_FIELDS:
            if name in self.fields:
                # Django renders a hidden copy of a callable default's value to detect changes; {} is
                # no moment's value, so compare with the version's own, as for every other field.
                self.fields[name].show_hidden_initial = False

    def clean(self):
        cleaned = super().clean()
        for name in (*JSON_OBJECT_FIELDS, *open_metadata.METADATA_MAPS):
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = {}  # an empty box is an empty object, the model's default
        if cleaned.get("sha256") and not cleaned.get("file"):
            self.add_error("sha256", "Only meaningful with a file.")
        return cleaned

    def metadata_changes(self) -> dict[str, dict]:
        """The maps this form changed, as the merge patches services.update_version takes (a name no
        longer in the box is removed)."""
        patches = {}
        for name in open_metadata.METADATA_MAPS:
            if name in self.changed_data:
                before, after = self.initial.get(name) or {}, self.cleaned_data[name]
                patches[name] = {**dict.fromkeys(before), **after}
        return patches


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


class ApproveForm(forms.Form):
    target = forms.ChoiceField(
        choices=target_choices,
        help_text="Your approval counts towards the target's promotion policy (approvals_required) when "
        "someone else deploys.",
    )
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
