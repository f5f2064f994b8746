"""The admin's form for the deployments' "Roll back…" action."""

from __future__ import annotations

from django import forms


class RollbackForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded with the rollback. Left empty: “rolled back from the admin by <your user name>”.",
    )


class ConcludeForm(forms.Form):
    """The admin's "Conclude…" action: the winner among the experiment's variants."""

    winner = forms.ChoiceField(help_text="Deployed to the target as its only active version.")
    make_default = forms.BooleanField(required=False, help_text="Also make it the model's default version.")

    def __init__(self, *args, variants: list[str], suggested: str | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["winner"].choices = [(name, name) for name in variants]
        if suggested:
            self.fields["winner"].initial = suggested
