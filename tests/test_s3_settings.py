"""The settings for what differs between S3-compatible stores: read strictly from the environment and
handed to botocore, with a default (checksums only when an operation requires them) that all the stores
the README names accept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from registry_site.storage import S3ArtifactStorage
from tests.live import ROOT

READ_STORAGE = "import json, registry_site.settings as s; print(json.dumps(s.STORAGES['default']['OPTIONS']))"


def storage_options(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-c", READ_STORAGE],
        cwd=ROOT,
        env={**clean, "REGISTRY_S3_BUCKET": "models", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.subprocess
def test_the_defaults_suit_every_store():
    done = storage_options()
    options = json.loads(done.stdout)
    assert options["checksums"] == "when_required"
    assert options["addressing_style"] == "auto" and options["signature_version"] == "s3v4"
    assert options["part_size"] == 64 * 1024**2 and options["concurrency"] == 8


@pytest.mark.subprocess
def test_a_store_recipe_is_read_and_a_wrong_value_refused():
    done = storage_options(
        REGISTRY_S3_CHECKSUMS="when_supported", REGISTRY_S3_ADDRESSING_STYLE="virtual", REGISTRY_S3_PART_SIZE_MB="16"
    )
    options = json.loads(done.stdout)
    assert (options["checksums"], options["addressing_style"], options["part_size"]) == (
        "when_supported",
        "virtual",
        16 * 1024**2,
    )
    refused = storage_options(REGISTRY_S3_CHECKSUMS="sometimes")
    assert refused.returncode != 0
    assert "REGISTRY_S3_CHECKSUMS must be one of when_required, when_supported, got 'sometimes'" in refused.stderr
    assert storage_options(REGISTRY_S3_PART_SIZE_MB="4").returncode != 0  # S3's smallest part is 5 MiB


def test_the_storage_hands_the_settings_to_botocore():
    storage = S3ArtifactStorage(bucket_name="models", addressing_style="path", part_size=16 * 1024**2, concurrency=4)
    config = storage.client_config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.s3 == {"addressing_style": "path"} and config.signature_version == "s3v4"
    assert storage.upload_config.multipart_chunksize == 16 * 1024**2
    assert storage.upload_config.max_request_concurrency == 4
    with pytest.raises(ImproperlyConfigured, match="checksums must be one of"):
        S3ArtifactStorage(bucket_name="models", checksums="always")
