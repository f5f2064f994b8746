"""manage.py update_model MODEL [--description TEXT] [--model-type T] [--active | --inactive]
[--readme-file README.md | --readme-file -] [--metric-directions '{"ece": "lower"}']"""

from __future__ import annotations

import sys

from django.core.management.base import CommandError

from models_app import selectors, services
from registry_site.commands import RegistryCommand, json_argument


class Command(RegistryCommand):
    help = "Change a model's description, type, active flag, model card (Markdown) or metric directions."

    def add_arguments(self, parser):
        parser.add_argument("model")
        parser.add_argument("--description")
        parser.add_argument("--model-type", dest="model_type")
        parser.add_argument("--active", dest="is_active", action="store_true", default=None)
        parser.add_argument("--inactive", dest="is_active", action="store_false", default=None)
        parser.add_argument("--readme-file", help="the model card, a Markdown file (- reads stdin)")
        parser.add_argument(
            "--metric-directions",
            dest="metric_directions",
            type=json_argument,
            help='which way each metric is better, a JSON object: {"ece": "lower"}',
        )

    def handle(self, *args, **options):
        model = selectors.get_model(options["model"])
        changes = {
            field: options[field]
            for field in ("description", "model_type", "is_active", "metric_directions")
            if options[field] is not None
        }
        if options["readme_file"] is not None:
            try:
                if options["readme_file"] == "-":
                    changes["readme"] = sys.stdin.read()
                else:
                    with open(options["readme_file"], encoding="utf-8") as readme:
                        changes["readme"] = readme.read()
            except OSError as exc:
                raise CommandError(f"--readme-file: cannot read {options['readme_file']}: {exc.strerror}.") from None
            except UnicodeDecodeError:
                raise CommandError("--readme-file: the model card must be UTF-8 text.") from None
        if not changes:
            raise CommandError(
                "Nothing to change: give --description, --model-type, --active/--inactive, "
                "--readme-file or --metric-directions."
            )
        model = services.update_model(model=model, changes=changes)
        self.stdout.write(f"Updated {model.name} ({', '.join(sorted(changes))}).")
