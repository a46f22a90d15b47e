import secrets

import pytest

from synthmix.quality.credentials import REDACTED, redact_credentials

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY3XAMPL9KEY"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nq8Zx\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA7"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU"),  # END line cut off
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
        (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
        ("export GITHUB_TOKEN=ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
        ("key sk-proj-" + "Ab3d" * 6, "sk-proj-" + "Ab3d" * 6),
        ("hf_" + "x7Y" * 12, "hf_" + "x7Y" * 12),
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ('{"api_key": "12345678abcd"}', "12345678abcd"),
        ("password: hunter2hunter2", "hunter2hunter2"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "eyJhbGciOiJIUzI1NiJ9"),
    ],
)
def test_credentials_of_known_shapes_are_redacted(text: str, secret: str) -> None:
    redacted = redact_credentials(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_a_ray_session_token_alone_on_a_line_is_redacted() -> None:
    token = secrets.token_hex(32)  # how Ray makes its cluster token
    assert redact_credentials(f"{token}\n") == f"{REDACTED}\n"
    assert redact_credentials(f"/tmp/ray/session_x/{token}/auth") == f"/tmp/ray/session_x/{REDACTED}/auth"


def test_the_name_of_a_named_secret_is_kept() -> None:
    assert redact_credentials("RAY_AUTH_TOKEN=0123456789abcdef") == f"RAY_AUTH_TOKEN={REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "AssertionError (tests.py line 2: assert add(2, 2) == 4)",
        "tokens = tokenize('a b c')",
        "token = next(tokens)",
        "author: Jane Austen",
        "ModuleNotFoundError: No module named 'numpy'",
        "os.scandir '/tmp/pytest-of-root/pytest-25/test_secrets_a_program_reads_r0/run': outside the sandbox's directory",
        'File "/sandbox/solution.py", line 3, in test_sum_of_2_and_3_is_5_for_every_order',
        "sha 0123456789abcdef",  # short hashes stay
        "x" * 2000,
    ],
)
def test_ordinary_output_is_left_alone(text: str) -> None:
    assert redact_credentials(text) == text
