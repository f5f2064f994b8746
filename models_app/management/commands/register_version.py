"""manage.py register_version MODEL VERSION --format onnx [--file PATH] [--accuracy 0.9 ...]"""

from django.core.management.base import CommandError

from models_app import selectors, services
from models_app.models import METRIC_FIELDS
from models_app.serializers import VersionCreateSerializer
from models_app.uploads import receive_local_file
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Register a new version of a model, with its file from this machine's disk."

    def add_arguments(self, parser):
        parser.add_argument("model")
        parser.add_argument("version")
        parser.add_argument("--format", required=True)
        parser.add_argument("--file", help="path of the model file to store")
        parser.add_argument("--status")
        parser.add_argument("--release-notes", dest="release_notes")
        parser.add_argument("--input-shape", dest="input_shape", help="JSON list, e.g. [1,3,224,224]")
        parser.add_argument("--output-shape", dest="output_shape", help="JSON list, e.g. [1,1000]")
        parser.add_argument("--training-config", dest="training_config", help="JSON object")
        parser.add_argument("--default", action="store_true", help="make it the model's default version")
        for metric in METRIC_FIELDS:
            parser.add_argument(f"--{metric.lower().replace('_', '-')}", dest=metric, help="in [0, 1]")

    def handle(self, *args, **options):
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
                *METRIC_FIELDS,
            )
            if options.get(key) is not None
        }
        # The API's own validation, so the command accepts exactly what the API accepts.
        serializer = VersionCreateSerializer(data=given)
        if not serializer.is_valid():
            problems = "; ".join(f"{field}: {' '.join(map(str, errs))}" for field, errs in serializer.errors.items())
            raise CommandError(f"Invalid version: {problems}")
        fields = dict(serializer.validated_data)
        upload = None
        if options["file"]:
            try:
                upload = receive_local_file(options["file"])
            except OSError as exc:
                raise CommandError(f"Cannot read {options['file']}: {exc.strerror}") from None
        try:
            version = services.register_version(
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
        self.stdout.write(
            f"Registered {model.name}:{version.version}"
            + (f" ({version.file_size} bytes, sha256 {version.checksum})" if version.artifact_id else " (no file)")
            + (" as the default" if version.is_default else "")
        )
