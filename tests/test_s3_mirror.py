"""s3://BUCKET/PREFIX mirrors: a private bucket on an S3-compatible server on loopback (moto),
requests signed by botocore; the bucket refuses unsigned ones."""

from __future__ import annotations

import json

import httpx
import pytest

from modelfiles import lora_like, sd15_like
from test_mirrors import catalog_with

moto_server = pytest.importorskip("moto.server")
botocore_session = pytest.importorskip("botocore.session")


@pytest.fixture
def bucket(monkeypatch, tmp_path):
    from botocore.config import Config

    from sdm import s3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "AKIDSDMTEST",
        "AWS_SECRET_ACCESS_KEY": "sdm-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Nothing of this machine's AWS set-up, and never the instance metadata address.
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3._client.cache_clear()
    client = botocore_session.get_session().create_client(
        "s3", endpoint_url=url, region_name="us-east-1", config=Config(s3={"addressing_style": "path"})
    )
    client.create_bucket(Bucket="models")
    yield client, url
    s3._client.cache_clear()
    server.stop()


def test_frozen_install_from_a_private_bucket_with_the_hubs_down(sdm, hub, bucket, tmp_path, monkeypatch):
    client, url = bucket
    base, style = sd15_like(31), lora_like(32)
    hub.add_hf("org/base", "base.safetensors", base)
    hub.add_hf("org/style", "style.safetensors", style)
    catalog_with(tmp_path, monkeypatch, base)
    first, second = tmp_path / "first", tmp_path / "second"
    assert sdm("--home", str(first), "pull", "base").code == 0
    assert sdm("--home", str(first), "pull", "hf://org/style/style.safetensors", "--type", "lora").code == 0
    manifest = tmp_path / "models.yaml"
    manifest.write_text(sdm("--home", str(first), "export").out)
    tree = tmp_path / "tree"
    assert sdm("--home", str(first), "mirror", "build", str(tree)).code == 0
    for blob in (tree / "sha256").iterdir():  # what `aws s3 sync TREE s3://models/team` uploads
        client.put_object(Bucket="models", Key=f"team/sha256/{blob.name}", Body=blob.read_bytes())
        # The bucket is private: an unsigned request is refused.
        assert httpx.get(f"{url}/models/team/sha256/{blob.name}").status_code == 403
    hub.close()  # Hugging Face is gone: any request to it fails
    asked = len(hub.requests)
    monkeypatch.setenv("SDM_MIRRORS", "s3://models/team")
    monkeypatch.setenv("SDM_MIRROR_TOKEN", "never-sent-to-a-bucket")
    result = sdm("--home", str(second), "pull", "-f", str(manifest), "--frozen", "--json")
    assert result.code == 0, result
    assert len(hub.requests) == asked
    assert {json.loads(line)["status"] for line in result.out.splitlines()} == {"downloaded"}
    fields = ("filename", "sha256", "source")
    listed = sorted(tuple(i[k] for k in fields) for i in sdm("--home", str(second), "list", "--json").json())
    assert listed == sorted(
        tuple(i[k] for k in fields) for i in sdm("--home", str(first), "list", "--json").json()
    )
    # The signature never leaves the transfer: not in results, records or messages.
    records = "".join(p.read_text() for p in (second / ".sdm").rglob("*.json"))
    assert "X-Amz-Signature" not in result.out + result.err + records
    assert "AKIDSDMTEST" not in result.out + result.err + records


def test_a_bucket_without_credentials_falls_through_to_the_source(
    sdm, hub, bucket, store, tmp_path, monkeypatch
):
    _client, _url = bucket  # its environment: a bucket this run cannot sign for
    data = sd15_like(33)
    hub.add_hf("org/base", "base.safetensors", data)
    catalog_with(tmp_path, monkeypatch, data)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    hub.add_hf("org/style", "style.safetensors", lora_like(34))
    monkeypatch.setenv("SDM_MIRRORS", "s3://models/team")
    specs = tmp_path / "models.yaml"
    specs.write_text('- base\n- {spec: "hf://org/style/style.safetensors", type: lora}\n')
    result = sdm("pull", "-f", str(specs), "--json", "--parallel", "1")
    assert result.code == 0, result
    # Said once (not once per file), at once: a fleet whose bucket refuses it must not go
    # to the hubs without a word.
    [said] = [line for line in result.err.splitlines() if line.startswith("mirror s3://models/team/sha256/")]
    assert "cannot sign a request for s3://models/team" in said and "credentials" in said
    sources = [json.loads(line)["source"] for line in result.out.splitlines()]
    assert sources[0].startswith("hf://org/base") and sources[1].startswith("hf://org/style")
    assert (store / "checkpoints" / "base.safetensors").read_bytes() == data


def test_a_malformed_bucket_is_one_line_before_anything_else(sdm, hub, bucket, monkeypatch):
    monkeypatch.setenv("SDM_MIRRORS", "s3:///no-bucket")
    result = sdm("pull", "hf://org/x/x.safetensors", "--type", "lora")
    assert result.code == 2
    assert (
        result.err.splitlines()[0]
        == "sdm: error: mirror 's3:///no-bucket': expected s3://BUCKET or s3://BUCKET/PREFIX"
    )
