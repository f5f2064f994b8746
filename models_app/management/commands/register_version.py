"""manage.py register_version MODEL VERSION --format onnx [--file PATH] [--accuracy 0.9 ...]
[--metrics '{"auc": 0.91}'] [--tags '{"team": "vision"}'] [--training-run ID] [--code-commit SHA] ..."""

from django.core.management.base import CommandError

from models_app import selectors, services
from models_app.management.version_arguments import add_version_metadata_arguments, version_metadata
from models_app.uploads import receive_local_file
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Register a new version of a model, with its file from this machine's disk."

    def add_arguments(self, parser):
        parser.add_argument("model")
        self.add_model_version_argument(parser)
        parser.add_argument("--format", required=True)
        parser.add_argument("--file", help="path of the model file to store")
        add_version_metadata_arguments(parser)
        parser.add_argument("--default", action="store_true", help="make it the model's default version")

    def handle(self, *args, **options):
        options["version"] = self.model_version(options)
        model = selectors.get_model(options["model"])
        given = {"version": options["version"], "format": options["format"], **version_metadata(options)}
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
