"""The admin's forms: the deployments' "Roll back…" action, and the experiments' pages."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from deployments_app.models import MAX_VARIANTS, Variant


class RollbackForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded with the rollback. Left empty: “rolled back from the admin by <your user name>”.",
    )


class ConcludeForm(forms.Form):
    """An experiment's "Conclude…" page: the winner among its variants, and whether it becomes the default."""

    winner = forms.ChoiceField(help_text="Deployed to the target as its only active version.")
    make_default = forms.BooleanField(required=False, help_text="Also make it the model's default version.")

    def __init__(self, *args, variants: list[str], suggested: str | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["winner"].choices = [(name, name) for name in variants]
        if suggested:
            self.fields["winner"].initial = suggested


# --- The experiments' own pages (deployments_app.admin.ExperimentAdmin) -----------------------------
# Weights are typed in percent with up to two decimals (12.5 = 12.5% of the traffic); the services count
# basis points (1% = 100), so the two are exact conversions of each other.
PERCENT_HELP = "Percent of the target's traffic, up to two decimals (12.5 = 12.5%, 1250 basis points)."


def percent_field(**kwargs) -> forms.DecimalField:
    return forms.DecimalField(min_value=0, max_value=100, max_digits=5, decimal_places=2, **kwargs)


def basis_points(percent) -> int:
    return int(percent * 100)


class ExperimentForm(forms.Form):
    """The "Add experiment" page, apart from the variants (VariantFormSet)."""

    model = forms.CharField(max_length=255, help_text="The model's name; the variants are its versions.")
    target = forms.ChoiceField(help_text="The deployment target whose traffic the variants split.")
    name = forms.CharField(max_length=128)
    metric = forms.CharField(max_length=64, initial="conversion", help_text="What the serving systems report.")
    metric_kind = forms.ChoiceField(
        choices=[("rate", "rate: exposures and conversions"), ("mean", "mean: count, sum and sum of squares")],
        initial="rate",
    )
    higher_is_better = forms.BooleanField(
        required=False, initial=True, help_text="Unticked: lower is better (latency)."
    )
    min_samples = forms.IntegerField(
        min_value=0, initial=100, help_text="Fewer units than this in a variant: the verdict is “not enough data”."
    )
    salt = forms.CharField(
        max_length=64, required=False, help_text="Hashed with each unit's key; left empty, a random one."
    )
    start_now = forms.BooleanField(
        required=False, help_text="Start it at once (otherwise it stays a draft until you press Start)."
    )

    def __init__(self, *args, targets: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(name, name) for name in targets]


class VariantForm(forms.Form):
    version = forms.CharField(max_length=255, help_text="A version of the model, with a file.")
    # The model field's own rules, so that a bad variant name is refused here, on its row, and never
    # reaches the service's check, whose error would name the experiment's field of the same name.
    name = forms.CharField(
        max_length=64,
        required=False,
        validators=Variant._meta.get_field("name").validators,
        help_text="Left empty: the version string.",
    )
    weight = percent_field(help_text=PERCENT_HELP)
    is_control = forms.BooleanField(required=False, label="control")


# How many variants an experiment may have is create_experiment's rule (2 to 10); the formset shows four
# empty rows (`?rows=10` shows ten) and, like every form, refuses more rows than any experiment may have.
VariantFormSet = forms.formset_factory(VariantForm, extra=4, max_num=MAX_VARIANTS, absolute_max=MAX_VARIANTS)


class WeightsForm(forms.Form):
    """ "Change weights": one percent field per variant, by the variant's id (a name may hold spaces)."""

    def __init__(self, *args, variants: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.variants = variants
        for variant in variants:
            label = f"{variant.name} ({variant.version.version}{', control' if variant.is_control else ''})"
            # The page says once, above them, that these are percent (PERCENT_HELP).
            self.fields[f"variant_{variant.pk}"] = percent_field(label=label, initial=Decimal(variant.weight) / 100)

    def weights(self) -> dict[str, int]:
        return {v.name: basis_points(self.cleaned_data[f"variant_{v.pk}"]) for v in self.variants}
