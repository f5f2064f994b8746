"""manage.py storage_usage"""

from models_app.maintenance import storage_usage
from registry_site.commands import RegistryCommand


class Command(RegistryCommand):
    help = "Bytes stored per model and in all; a file shared by several versions or models counts once."

    def handle(self, *args, **options):
        usage = storage_usage()
        width = max([len("model"), *map(len, usage.per_model)])
        self.stdout.write(f"{'model':<{width}}  {'files':>7}  {'bytes':>15}")
        for name, (files, used) in usage.per_model.items():
            self.stdout.write(f"{name:<{width}}  {files:>7}  {used:>15}")
        self.stdout.write(f"{'total (distinct files)':<{width}}  {usage.total_files:>7}  {usage.total_bytes:>15}")
