"""Strip what looks like a credential from text that will be stored (a program's output, an error).

Rows become a dataset: a token printed by code under test, or quoted in its error, must not ride
along. The rules favour recall over keeping every character: a long random-looking string is
replaced even when it is a harmless hash, since a stored row gains little from it.

Each match becomes REDACTED. What is looked for, in order:
- PEM private key blocks (`-----BEGIN ... PRIVATE KEY-----` to its END line, or to the end of
  the text when the END line is missing);
- tokens with a known shape: AWS access key ids, GitHub, GitLab, Hugging Face, OpenAI-style
  `sk-`, Slack, Google API keys, JSON Web Tokens;
- the credentials of `Bearer`/`Basic` authorization, and the value of a name that says secret
  (`password=`, `"api_key": "..."`, `AWS_SECRET_ACCESS_KEY=`, `token: ...`), the name kept;
- any other run of 32 or more letters, digits and `+/=_-` holding at least two digits and two
  letters, unless it is a snake_case name (in an absolute path, each part is judged alone): hex
  and base64 secrets (a Ray session token is 64 hex digits, an AWS secret key 40 base64 characters).
"""

import re

REDACTED = "[redacted]"

_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)", re.DOTALL)
_KNOWN_TOKENS = re.compile(
    r"\b(?:"
    r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI and others
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON Web Tokens
    r")"
)
# A name that says secret, its separator and an optional quote; then a value of six or more
# characters without brackets, ending where a value ends (so `tokens = tokenize(text)` is code, kept).
_NAMED_SECRET = re.compile(
    r"(?i)(\b[\w.-]*(?:secret|token|passw(?:or)?d|passphrase|api[_-]?key|access[_-]?key|private[_-]?key|credential|authorization|auth(?![a-z]))"
    r"[\w.-]*[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;()\[\]{}<>]{6,}(?=[\s\"',;]|$)"
)
_AUTH_HEADER = re.compile(r"(?i)(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/-]{8,}=*")
_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
# A snake_case name (`test_sum_of_2_and_3`) is code, not a secret: random tokens mix cases or lack `_`.
_SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
RANDOM_LOOKING_CHARS = 32


def redact_credentials(text: str) -> str:
    """`text` with every credential-like span replaced by REDACTED (names of named secrets kept)."""
    text = _PRIVATE_KEY.sub(REDACTED, text)
    text = _KNOWN_TOKENS.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda match: match.group(1) + REDACTED, text)
    text = _NAMED_SECRET.sub(lambda match: match.group(1) + REDACTED, text)
    return _TOKEN_CHARACTERS.sub(_redact_random_looking, text)


def _redact_random_looking(match: re.Match) -> str:
    run = match.group()
    if run.startswith("/"):  # an absolute path: each of its parts is judged alone
        return "/".join(REDACTED if _looks_random(part) else part for part in run.split("/"))
    return REDACTED if _looks_random(run) else run


def _looks_random(text: str) -> bool:
    digits = sum(char.isdigit() for char in text)
    letters = sum(char.isalpha() for char in text)
    return len(text) >= RANDOM_LOOKING_CHARS and digits >= 2 and letters >= 2 and not _SNAKE_CASE.fullmatch(text)
