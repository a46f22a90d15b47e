"""A wrong key and a key without permission, against a server that checks signatures and IAM
policies (moto with authentication on): `run` stops before any stage, saying which it is."""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from synthmix.pipeline import storage
from tests.storage.conftest import CREDENTIALS, start_moto_server

ROOT = Path(__file__).resolve().parents[2]
# The actions moto lets through before it checks credentials: the administrator's setup below.
SETUP_ACTIONS = 3


@pytest.fixture(scope="module")
def strict_server():
    """A second moto server, which authenticates every request after the setup; yields its
    endpoint and the keys of a user who exists but may do nothing."""
    process, endpoint = start_moto_server({**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS)})
    admin = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
    boto3.client("s3", **admin).create_bucket(Bucket="guarded")
    iam = boto3.client("iam", **admin)
    iam.create_user(UserName="no-rights")
    key = iam.create_access_key(UserName="no-rights")["AccessKey"]
    yield endpoint, key["AccessKeyId"], key["SecretAccessKey"]
    process.terminate()
    process.wait(timeout=10)


def run_against(endpoint: str, key_id: str, secret: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **CREDENTIALS, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret, storage.ENDPOINT_ENV: endpoint}
    command = [sys.executable, "-m", "synthmix", "run", "jobs/dedup.yaml", "--run-dir", "s3://guarded/runs/a", "--address", "ray://127.0.0.1:9"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_wrong_key_is_named_before_any_stage(strict_server):
    endpoint, _, _ = strict_server
    result = run_against(endpoint, "AKIANOTAREALKEY00000", "wrong-secret")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "s3://guarded/runs/a" in result.stderr and "access key or secret is wrong" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_without_permission_is_named_before_any_stage(strict_server):
    endpoint, key_id, secret = strict_server
    result = run_against(endpoint, key_id, secret)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "s3://guarded/runs/a" in result.stderr and "access denied" in result.stderr
    assert "Traceback" not in result.stderr
