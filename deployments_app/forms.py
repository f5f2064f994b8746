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
