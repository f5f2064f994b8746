"""manage.py register_version MODEL VERSION --format onnx [--file PATH] [--accuracy 0.9 ...]
[--metrics '{"auc": 0.91}'] [--tags '{"team": "vision"}'] [--training-run ID] [--code-commit SHA] ..."""

from argparse import ArgumentTypeError
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from models_app import selectors, services
from models_app.models import METRIC_FIELDS
from models_app.uploads import receive_local_file
from registry_site.commands import RegistryCommand
from registry_site.json_values import parse_json_text
from registry_site.validators import LINEAGE_FIELDS


def json_argument(text: str) -> Any:
    try:
        return parse_json_text(text)
    except ValidationError as exc:
        raise ArgumentTypeError(exc.messages[0]) from None


class Command(RegistryCommand):
    help = "Register a new version of a model, with its file from this machine's disk."

    def add_arguments(self, parser):
        parser.add_argument("model")
        self.add_model_version_argument(parser)
        parser.add_argument("--format", required=True)
        parser.add_argument("--file", help="path of the model file to store")
        parser.add_argument("--status")
        parser.add_argument("--release-notes", dest="release_notes")
        parser.add_argument(
            "--input-shape", dest="input_shape", type=json_argument, help="JSON list, e.g. [1,3,224,224]"
        )
        parser.add_argument("--output-shape", dest="output_shape", type=json_argument, help="JSON list, e.g. [1,1000]")
        parser.add_argument("--training-config", dest="training_config", type=json_argument, help="JSON object")
        parser.add_argument("--metrics", type=json_argument, help='named metrics, a JSON object: {"auc": 0.91}')
        parser.add_argument("--tags", type=json_argument, help='tags, a JSON object: {"team": "vision"}')
        for field in LINEAGE_FIELDS:
            parser.add_argument(f"--{field.replace('_', '-')}", dest=field)
        parser.add_argument("--default", action="store_true", help="make it the model's default version")
        for metric in METRIC_FIELDS:
            parser.add_argument(f"--{metric.lower().replace('_', '-')}", dest=metric, type=float, help="in [0, 1]")

    def handle(self, *args, **options):
        options["version"] = self.model_version(options)
        model = selectors.get_model(options["model"])
        given = {
            key: options[key]
            for key in (
                "version",
                "format",
                "status",
                "release_notes",
                "input_shape",
                "output_shape",
                "training_config",
                "metrics",
                "tags",
                *LINEAGE_FIELDS,
                *METRIC_FIELDS,
            )
            if options.get(key) is not None
        }
        # The model's rules, before a byte of the file is read: a typo costs no hashing.
        fields = services.clean_version_fields(**given)
        upload = None
        if options["file"]:
            try:
                upload = receive_local_file(options["file"])
            except OSError as exc:
                raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from None
        try:
            registration = services.register_version(
                model=model,
                version=fields.pop("version"),
                format=fields.pop("format"),
                upload=upload,
                make_default=options["default"],
                **fields,
            )
        finally:
            if upload is not None:
                upload.close()
        version = registration.version
        self.stdout.write(
            ("Registered" if registration.created else "Already registered, unchanged:")
            + f" {model.name}:{version.version}"
            + (f" ({version.file_size} bytes, sha256 {version.checksum})" if version.artifact_id else " (no file)")
            + (" as the default" if version.is_default else "")
        )
