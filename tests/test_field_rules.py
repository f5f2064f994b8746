"""Each field's rule lives on the model (registry_site.validators on models_app.models), and every front
door applies it: the API's serializers, the admin's form and the commands (through the services'
clean_fields) refuse the same values with the same message, and write nothing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from models_app import services
from models_app.models import ModelVersion
from registry_site.errors import InvalidInput

pytestmark = pytest.mark.django_db

# field, a refused value as text (forms, commands), as JSON (API), the message every door shows
CASES = [
    ("accuracy", "1.5", 1.5, "Must be between 0 and 1."),
    ("precision", "-0.5", -0.5, "Must be between 0 and 1."),
    ("input_shape", "[]", [], "Must be a list of 1 to 16 dimensions"),
    ("output_shape", "[0, 3]", [0, 3], "Must be a list of 1 to 16 dimensions"),
    ("training_config", "[1, 2]", [1, 2], 'Must be a JSON object, such as {"epochs": 90}.'),
    ("training_config", '{"a": "\\u0000"}', {"a": "\x00"}, "Contains a NUL character"),
]
COMMAND_OPTIONS = {"accuracy": "--accuracy", "precision": "--precision", "input_shape": "--input-shape"}
COMMAND_OPTIONS |= {"output_shape": "--output-shape", "training_config": "--training-config"}


@pytest.mark.parametrize("field,text,value,message", CASES)
def test_the_api_admin_command_and_service_refuse_alike(api, admin_client, make_model, field, text, value, message):
    model = make_model()

    response = api.post(
        f"/models/{model.name}/versions", {"version": "v1", "format": "onnx", field: value}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][field][0].startswith(message)

    response = admin_client.post(
        reverse("admin:models_app_modelversion_add"),
        {"model": model.pk, "version": "v1", "format": "onnx", "status": "training", field: text},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field][0].startswith(message)

    with pytest.raises(CommandError, match=field) as refused:
        call_command("register_version", model.name, "v1", "--format", "onnx", COMMAND_OPTIONS[field], text)
    assert message in str(refused.value)

    with pytest.raises(InvalidInput) as refused:
        services.register_version(model=model, version="v1", format="onnx", **{field: value})
    assert refused.value.errors[field][0].startswith(message)

    assert not ModelVersion.objects.exists()


def test_a_metric_that_is_not_finite_is_refused_by_the_rule(api, make_model):
    """Given as text, "nan" parses to a float that only the rule refuses (the admin's number field
    refuses to parse it at all: "Enter a number.")."""
    model = make_model()
    message = "Must be a finite number, not NaN or infinity."
    response = api.post(f"/models/{model.name}/versions", {"version": "v1", "format": "onnx", "recall": "nan"})
    assert response.json()["errors"]["recall"] == [message]
    with pytest.raises(CommandError, match=message):
        call_command("register_version", model.name, "v1", "--format", "onnx", "--recall", "nan")


def test_a_change_is_held_to_the_same_rules(make_version):
    version = make_version()
    with pytest.raises(InvalidInput) as refused:
        services.update_version(version=version, changes={"accuracy": 7, "deployment_config": []})
    assert set(refused.value.errors) == {"accuracy", "deployment_config"}
    version.refresh_from_db()
    assert version.accuracy is None and version.deployment_config == {}


def test_a_choice_names_the_allowed_values_everywhere(api, make_model):
    model = make_model()
    response = api.post(f"/models/{model.name}/versions", {"version": "v1", "format": "keras"}, format="json")
    expected = '"keras" is not a valid choice; use one of: tensorflow_saved_model, onnx, tflite, pytorch, other.'
    assert response.json()["errors"]["format"] == [expected]
    with pytest.raises(CommandError) as refused:
        call_command("register_version", model.name, "v1", "--format", "keras")
    assert expected in str(refused.value)
