"""Sources and outputs on s3:// (moto's S3-compatible server on loopback) and pvc:// parsing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantfleet.api.results import QuantizeResult, parse_result
from quantfleet_jobs import quantize
from quantfleet_jobs.common import JobError, parse_location, publish


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    import s3fs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    filesystem = s3fs.S3FileSystem()
    if not filesystem.exists("models"):
        filesystem.mkdir("models")
    return filesystem


def test_quantize_reads_from_and_writes_to_s3(s3: object, tiny_llama: Path, tmp_path: Path) -> None:
    import s3fs

    assert isinstance(s3, s3fs.S3FileSystem)
    s3.put(str(tiny_llama) + "/", "models/tiny/", recursive=True)
    log = tmp_path / "log"
    code = quantize.main(
        ["--source=s3://models/tiny", "--output=s3://models/tiny-fp8", "--scheme=FP8_DYNAMIC",
         f"--termination-log={log}", f"--workdir={tmp_path / 'work'}", "--device=cpu"]
    )  # fmt: skip

    result = parse_result(log.read_text())
    assert code == 0, result
    assert isinstance(result, QuantizeResult)
    assert result.output == "s3://models/tiny-fp8"
    uploaded = {Path(p).name for p in s3.find("models/tiny-fp8")}
    assert {"config.json", "model.safetensors", "recipe.yaml", "tokenizer.json"} <= uploaded
    assert s3.size("models/tiny-fp8/model.safetensors") == result.size_after_bytes


def test_missing_s3_source_fails_with_a_reason(s3: object, tmp_path: Path) -> None:
    log = tmp_path / "log"
    code = quantize.main(
        ["--source=s3://models/absent", f"--output={tmp_path / 'out'}", "--scheme=FP8_DYNAMIC",
         f"--termination-log={log}", f"--workdir={tmp_path / 'work'}"]
    )  # fmt: skip
    assert code == 1
    assert "s3://models/absent" in parse_result(log.read_text()).model_dump()["reason"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("uri", "want"),
    [
        pytest.param("pvc://models/qwen/w4a16", ("pvc", "/mnt/models/qwen/w4a16", None), id="pvc"),
        pytest.param("hf://Qwen/Qwen2-VL-2B@abc123", ("hf", "Qwen/Qwen2-VL-2B", "abc123"), id="hf"),
        pytest.param("hf://Qwen/Qwen2-VL-2B", ("hf", "Qwen/Qwen2-VL-2B", None), id="hf-no-rev"),
        pytest.param("s3://bucket/key/", ("s3", "bucket/key", None), id="s3"),
        pytest.param("/data/model", ("file", "/data/model", None), id="path"),
    ],
)
def test_parse_location(uri: str, want: tuple[str, str, str | None]) -> None:
    location = parse_location(uri, "/mnt")
    assert (location.scheme, location.path, location.revision) == want


@pytest.mark.parametrize(
    "uri", ["pvc://", "pvc://claim/../../etc", "hf://just-a-name", "s3://", "gs://bucket/x"]
)
def test_bad_locations_are_refused(uri: str) -> None:
    with pytest.raises(JobError):
        parse_location(uri, "/mnt")


def test_a_source_is_downloaded_into_the_model_cache_once(
    s3: object, tiny_llama: Path, tmp_path: Path
) -> None:
    """The second Job of the same source finds it in the shared cache: it still loads after the
    bucket lost it, and no partial download is left behind."""
    import s3fs

    from quantfleet_jobs.common import CACHE_COMPLETE, fetch_source

    assert isinstance(s3, s3fs.S3FileSystem)
    s3.put(str(tiny_llama) + "/", "models/cached/", recursive=True)
    cache = tmp_path / "cache"

    def fetch(job: str) -> Path:
        return fetch_source(
            "s3://models/cached", mount_root="/nonexistent", workdir=tmp_path / job,
            token_env="HF_TOKEN", cache=cache,
        )  # fmt: skip

    first = fetch("quantize")
    s3.rm("models/cached/", recursive=True)
    second = fetch("evaluate")

    assert first == second == cache / "s3" / "models" / "cached"
    assert (second / CACHE_COMPLETE).exists()
    assert (second / "config.json").exists()
    assert list((cache / ".partial").iterdir()) == []
    with pytest.raises(JobError, match="could not download s3://models/gone"):
        fetch_source(
            "s3://models/gone", mount_root="/nonexistent", workdir=tmp_path / "x",
            token_env="HF_TOKEN", cache=cache,
        )  # fmt: skip
    assert not (cache / "s3" / "models" / "gone").exists()


def staged(tmp_path: Path, weights: str) -> Path:
    staging = tmp_path / f"staging-{weights}"
    staging.mkdir()
    (staging / "config.json").write_text("{}")
    (staging / "model.safetensors").write_text(weights)
    return staging


def test_publish_never_writes_over_a_complete_result(tmp_path: Path) -> None:
    output = tmp_path / "models" / "qwen" / "0a1b2c3d4e"
    output.parent.mkdir(parents=True)

    first = publish(staged(tmp_path, "first"), str(output), mount_root="/mnt")
    second = publish(staged(tmp_path, "second"), str(output), mount_root="/mnt")

    assert first == second == str(output)
    assert (output / "model.safetensors").read_text() == "first"


def test_publish_refuses_a_folder_holding_something_else(tmp_path: Path) -> None:
    output = tmp_path / "models" / "qwen"
    output.mkdir(parents=True)
    (output / "notes.txt").write_text("mine")

    with pytest.raises(JobError, match="holds something else"):
        publish(staged(tmp_path, "new"), str(output), mount_root="/mnt")
    assert sorted(p.name for p in output.iterdir()) == ["notes.txt"]


def test_publish_keeps_a_complete_s3_result(s3: object, tmp_path: Path) -> None:
    output = "s3://models/qwen/0a1b2c3d4e"
    publish(staged(tmp_path, "first"), output, mount_root="/mnt")
    publish(staged(tmp_path, "second"), output, mount_root="/mnt")

    assert s3.cat_file("models/qwen/0a1b2c3d4e/model.safetensors") == b"first"  # type: ignore[attr-defined]
