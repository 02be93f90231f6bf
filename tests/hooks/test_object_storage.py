"""
``data_files`` from ``s3://`` for real: moto's S3 server on 127.0.0.1 (its own process), read by the amazon
provider's s3fs filesystem through an ``aws`` connection, uploaded to the emulator over HTTP. No mocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekDataFileError, SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import ReceivedFile, SestekEmulator
from tests._moto import ACCESS_KEY, CONN_ID, S3, SECRET_KEY, aws_connection_json

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def received(emu: SestekEmulator) -> dict[str, ReceivedFile]:
    (train,) = [r for r in emu.requests if r.endpoint == "train"]
    return {f.filename: f for f in train.files}


def test_objects_arrive_with_their_name_size_content_type_and_digest(s3: S3, sestek_conn: SestekEmulator) -> None:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    faq = b"Q: When are you open?\nA: From 9 to 17 on weekdays.\n"
    # More than one read-ahead block (8 MiB) and not a multiple of the upload block: every boundary is crossed.
    corpus = os.urandom(MIB) * 9 + b"tail"
    digests = {
        "faq.txt": s3.put("faq/faq.txt", faq),  # no content type given: moto stores binary/octet-stream
        "notes.data": s3.put("faq/notes.data", b"# Notes\n", content_type="text/markdown"),
        "corpus.bin": s3.put("big/corpus.bin", corpus),
    }
    SestekHook().submit_training(
        "faq-bot",
        "FAQ",
        data_files=[
            s3.url("faq/faq.txt"),
            ObjectStoragePath(f"s3://{s3.bucket}/faq/notes.data", conn_id=CONN_ID),
            s3.url("big/corpus.bin"),
        ],
    )
    files = received(sestek_conn)
    assert list(files) == ["faq.txt", "notes.data", "corpus.bin"]
    assert {name: f.sha256 for name, f in files.items()} == digests
    assert [f.size for f in files.values()] == [len(faq), len(b"# Notes\n"), len(corpus)]
    assert {name: f.content_type for name, f in files.items()} == {
        "faq.txt": "text/plain",  # guessed from the name: the declared type says nothing
        "notes.data": "text/markdown",  # declared by the object
        "corpus.bin": "application/octet-stream",
    }
    assert [f.filename for f in sestek_conn.trainings["faq-bot"].files] == list(files)


@pytest.mark.parametrize(
    ("where", "rule"),
    [
        (
            "missing-key",
            r"bucket 'acme-data-\w+' has no object 'faq/nope\.txt' \(looked up through connection 'aws_moto'\)",
        ),
        ("missing-bucket", r"there is no bucket 'no-such-bucket' \(looked up through connection 'aws_moto'\)"),
        ("folder", r"is a folder \(a key prefix\), not an object; list the objects in it instead$"),
        ("unknown-connection", r"names the Airflow connection 'aws_nope', which cannot be used: .*aws_nope.*defined"),
    ],
    ids=["missing-key", "missing-bucket", "folder", "unknown-connection"],
)
def test_missing_object_or_bucket_fails_before_any_request(
    s3: S3, sestek_conn: SestekEmulator, faq: str, where: str, rule: str
) -> None:
    s3.put("faq/faq.txt", b"Q: here?\nA: yes\n")
    url = {
        "missing-key": s3.url("faq/nope.txt"),
        "missing-bucket": f"s3://{CONN_ID}@no-such-bucket/faq/faq.txt",
        "folder": s3.url("faq"),
        "unknown-connection": s3.url("faq/faq.txt", conn_id="aws_nope"),
    }[where]
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("faq-bot", "FAQ", data_files=[faq, url])
    error = info.value
    assert error.field == "data_files[1]"
    assert error.value == re.sub(r"//\w+@", "//", url)  # the URL without its connection id
    assert re.search(rule, str(error)), str(error)
    assert str(error).startswith(f"Invalid data_files[1] = {error.value!r}: ")
    assert SECRET_KEY not in str(error) and ACCESS_KEY not in str(error)
    assert sestek_conn.requests == []  # not even a token request
    assert sestek_conn.counters["trainings_created"] == 0


@pytest.mark.usefixtures("airflow_db")
def test_operator_with_a_missing_object_fails_before_any_request(
    s3: S3, sestek_conn: SestekEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_sestek.operators.sestek import SestekTrainOperator
    from tests.dag_runner import run_task

    url = s3.url("faq/nope.txt")
    result = run_task(
        lambda: SestekTrainOperator(task_id="under_test", model_id="faq-bot", project_name="FAQ", data_files=[url])
    )
    assert result.task_states["under_test"] == "failed", result
    captured = capsys.readouterr()
    assert "SestekValidationError: Invalid data_files[0]" in captured.out + captured.err
    assert "has no object 'faq/nope.txt'" in captured.out + captured.err
    assert sestek_conn.requests == []  # not even a token request


def test_bad_aws_credentials_are_a_clear_error_without_the_secret(
    s3: S3, sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put("faq/faq.txt", b"Q: here?\nA: yes\n")
    iam = s3.server.client("iam")
    iam.create_user(UserName="sestek-reader")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="sestek-reader", PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="sestek-reader")["AccessKey"]
    wrong_secret = "wRoNg/secret+Key0123456789abcdefghijklm"
    # Connection ids of their own: Airflow caches one filesystem per (scheme, connection id) and process.
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_MOTO_READER", aws_connection_json(s3.server.url, key["AccessKeyId"], key["SecretAccessKey"])
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_MOTO_WRONG", aws_connection_json(s3.server.url, key["AccessKeyId"], wrong_secret)
    )
    s3.server.require_auth()  # from here on moto checks every signature against its IAM users
    hook = SestekHook()
    (good,) = hook.prepare_training("faq-bot", "FAQ", data_files=[s3.url("faq/faq.txt", "aws_moto_reader")]).data_files
    assert good.size == len(b"Q: here?\nA: yes\n")
    with pytest.raises(SestekValidationError) as info:
        hook.submit_training("faq-bot", "FAQ", data_files=[s3.url("faq/faq.txt", "aws_moto_wrong")])
    message = str(info.value)
    assert info.value.field == "data_files[0]"
    assert "access denied by the object store" in message
    assert "check the credentials and permissions of the Airflow connection 'aws_moto_wrong'" in message
    assert wrong_secret not in message and key["SecretAccessKey"] not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no botocore traceback attached
    assert sestek_conn.requests == []


def test_object_replaced_after_the_check_cuts_the_upload_off(s3: S3, sestek_conn: SestekEmulator) -> None:
    s3.put("faq/faq.txt", b"Q: here?\nA: yes\n")
    hook = SestekHook(retry_limit=0)
    request = hook.prepare_training("faq-bot", "FAQ", data_files=[s3.url("faq/faq.txt")])
    s3.put("faq/faq.txt", b"Q: here?\nA: yes, and a lot more than when it was checked\n")
    with pytest.raises(SestekDataFileError, match=r"'faq\.txt' grew while uploading"):
        hook.submit_training(request)
    assert sestek_conn.counters["trainings_created"] == 0


@pytest.mark.parametrize(
    ("scheme", "module", "names"),
    [
        ("gs", "gcsfs", ("gcsfs", "apache-airflow-providers-google")),
        ("abfs", "adlfs", ("adlfs", "apache-airflow-providers-microsoft-azure")),
        ("s3", "s3fs", ("s3fs", "apache-airflow-providers-amazon")),
    ],
)
def test_missing_filesystem_package_is_named(
    sestek_conn: SestekEmulator, scheme: str, module: str, names: tuple
) -> None:
    try:
        __import__(module)
    except ImportError:
        pass
    else:
        pytest.skip(f"{module} is installed here: the missing-package message cannot be seen")
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("faq-bot", "p", data_files=[f"{scheme}://bucket/faq.txt"])
    assert info.value.field == "data_files[0]"
    assert f"{scheme}:// needs a filesystem package" in str(info.value)
    for name in names:
        assert name in str(info.value)
    assert sestek_conn.requests == []


def test_malformed_object_url_is_named_as_malformed_not_as_a_missing_package(sestek_conn: SestekEmulator) -> None:
    # ObjectStoragePath raises ValueError for a broken URL too: only "Unsupported filesystem" means a package
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("faq-bot", "p", data_files=["gs://[bucket/faq.txt"])
    assert info.value.field == "data_files[0]"
    assert "Invalid IPv6 URL" in str(info.value)
    assert "needs a filesystem package" not in str(info.value)
    assert sestek_conn.requests == []


def test_object_storage_stays_out_of_the_dag_parse() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_sestek.hooks.sestek, airflow_provider_sestek.operators.sestek\n"
        "print(sorted(m for m in ('s3fs', 'botocore', 'boto3', 'aiobotocore', 'moto', "
        "'airflow_provider_sestek.hooks.object_storage') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# The README's own example, run as written -------------------------------------------------------------


def readme_block(language: str, contains: str) -> str:
    """The first fenced block of the README in ``language`` that contains ``contains``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL):
        if contains in block:
            return str(block)
    raise AssertionError(f"no ```{language} block with {contains!r} in README.md")


@pytest.mark.usefixtures("airflow_db")
def test_readme_s3_example_trains_from_s3_and_the_model_answers_from_it(
    s3: S3, sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from tests.dag_runner import run_dag_file

    # The Object storage section's training example (other README blocks name s3:// URLs too).
    example = readme_block("python", "s3://aws_data@")
    urls = re.findall(r'"(s3://[^"]+)"', example)
    assert urls, example
    # The connection as the README declares it, pointed at moto instead of the README's endpoint.
    declared = re.search(r"AIRFLOW_CONN_(\w+)='(\{.*?\})'", readme_block("bash", '"conn_type": "aws"'), flags=re.DOTALL)
    assert declared is not None
    conn = json.loads(declared.group(2))
    assert conn["conn_type"] == "aws" and "endpoint_url" in conn["extra"]
    conn["extra"]["endpoint_url"] = s3.server.url
    monkeypatch.setenv(f"AIRFLOW_CONN_{declared.group(1)}", json.dumps(conn))
    answer_text = "Open Settings, choose Security and press Reset password."
    buckets = set()
    for url in urls:
        match = re.fullmatch(r"s3://(\w+)@([\w.-]+)/(.+)", url)
        assert match and match.group(1).upper() == declared.group(1), url
        bucket, key = match.group(2), match.group(3)
        if bucket not in buckets:
            s3.server.client().create_bucket(Bucket=bucket)
            buckets.add(bucket)
        text = f"Q: How do I reset my password?\nA: {answer_text}\n" if key.endswith(".txt") else f"# {key}\n"
        s3.put(key, text.encode(), bucket=bucket)

    def build() -> Any:
        with DAG("readme_s3_example", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
            names: dict[str, Any] = {}
            exec(compile(example, "README.md", "exec"), names)  # the README's code, as written
            names["train"].poll_interval = 0.05  # the example waits 30 s between polls
        return dag

    dag_run = run_dag_file("readme_s3_example", build)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    model_id = next(iter(sestek_conn.trainings))
    assert [f.filename for f in sestek_conn.trainings[model_id].files] == [u.rsplit("/", 1)[-1] for u in urls]
    answer = SestekHook().ask(model_id, "How do I reset my password?")
    assert answer_text in json.dumps(answer)
    digest = hashlib.sha256(f"Q: How do I reset my password?\nA: {answer_text}\n".encode()).hexdigest()
    assert digest in {f.sha256 for f in sestek_conn.trainings[model_id].files}
