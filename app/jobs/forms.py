from __future__ import annotations

from typing import Any

from django import forms

from .submit import KINDS, MAX_TEXT_LENGTH, JobSpec, JobValidationError, parse_job

KIND_LABELS = {
    "add": "add: x + y",
    "sleep": "sleep: wait some seconds",
    "flaky": "flaky: fail N times, retry with backoff",
    "chord": "chord: sum of squares 0..n-1 in parallel",
    "urgent": "urgent: queue 'high'",
    "report": "report: queue 'low'",
}

# Which form fields become the task's args, in order.
ARG_FIELDS: dict[str, tuple[str, ...]] = {
    "add": ("x", "y"),
    "sleep": ("seconds",),
    "flaky": ("fail_times",),
    "chord": ("n",),
    "urgent": ("text",),
    "report": ("text",),
}


class JobForm(forms.Form):
    """The UI's way in; the fields are turned into the API's ``args`` and validated by parse_job."""

    kind = forms.ChoiceField(choices=[(kind, KIND_LABELS[kind]) for kind in KINDS])
    x = forms.IntegerField(required=False, initial=2, help_text="used by add")
    y = forms.IntegerField(required=False, initial=3, help_text="used by add")
    seconds = forms.FloatField(required=False, initial=5, help_text="used by sleep")
    fail_times = forms.IntegerField(required=False, initial=2, help_text="used by flaky")
    n = forms.IntegerField(required=False, initial=10, help_text="used by chord")
    text = forms.CharField(
        required=False, max_length=MAX_TEXT_LENGTH, initial="hello", help_text="used by urgent, report"
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind is None:
            return cleaned
        fields = ARG_FIELDS[kind]
        missing = [name for name in fields if cleaned.get(name) in (None, "")]
        for name in missing:
            self.add_error(name, f"required for {kind}")
        if missing:
            return cleaned
        try:
            cleaned["spec"] = parse_job(kind, [cleaned[name] for name in fields])
        except JobValidationError as error:
            raise forms.ValidationError(str(error)) from error
        return cleaned

    @property
    def spec(self) -> JobSpec:
        return self.cleaned_data["spec"]
