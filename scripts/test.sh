#!/usr/bin/env bash
# Install everything, then run the whole test suite (engine and end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The engine tests run SmolLM2-135M (the default embedded model): convert it now, not mid-test.
.venv/bin/synthmix models prepare

# The report test opens the HTML report in headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "test: chromium is missing; install Debian's chromium and chromium-driver" >&2
    exit 1
  fi
fi

# The near-duplicate tests build corpora from Debian's Chinese documentation: the manual pages
# (manpages-zh, some 700 pages) and Chinese translations of technical manuals that quote commands
# (tests/quality/mixed_script_corpus.py). One file of each package is checked, not a folder: man-db,
# login and passwd put a few pages of their own into /usr/share/man/zh_CN.
CHINESE_DOCS=(
  manpages-zh:/usr/share/man/zh_CN/man1/ab.1.gz
  debian-reference-zh-cn:/usr/share/debian-reference/debian-reference.zh-cn.txt.gz
  debian-reference-zh-tw:/usr/share/debian-reference/debian-reference.zh-tw.txt.gz
  maint-guide-zh-cn:/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.txt.gz
  maint-guide-zh-tw:/usr/share/doc/maint-guide-zh-tw/maint-guide.zh-tw.txt.gz
  debian-faq-zh-cn:/usr/share/doc/debian/FAQ/debian-faq.zh-cn.txt.gz
)
missing=()
for entry in "${CHINESE_DOCS[@]}"; do
  [ -f "${entry#*:}" ] || missing+=("${entry%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test: Debian packages ${missing[*]} are missing; install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# The sandbox tests run code inside bubblewrap, which scripts/install.sh installs as root.
if ! command -v bwrap >/dev/null 2>&1; then
  echo "test: bubblewrap (bwrap) is missing; install Debian's bubblewrap (apt-get install bubblewrap)" >&2
  exit 1
fi

# Lint, format and the layering rules (pyproject.toml: [tool.ruff], [tool.importlinter]) first:
# they take seconds, the suite takes minutes. The full install has both tools already.
LINT_VENV=.venv bash scripts/lint.sh

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# pytest exits 5 when it collects nothing: that is a failure here, as any non-zero status.
.venv/bin/python -m pytest tests "$@"
