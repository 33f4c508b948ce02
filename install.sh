#!/usr/bin/env bash
# Sets redlock up on a fresh Debian or Ubuntu machine with a Rust toolchain, from a clone of this
# repository: the README's first command. `./install.sh --deps` installs only what building and
# testing need (CI uses it). `sudo` is used for apt-get when not run as root.
set -euo pipefail
cd "$(dirname "$0")"

# 1. Packages. A Redis server to use; the C compiler for musl (ring, the TLS library's
#    cryptography, needs it for that target). For the tests: openssl and script(1) (TLS and
#    terminal cases), groff (the man pages render), python3, hyperfine, time and a C compiler
#    (the benchmarks' quick mode), python3-venv (CI's other server versions), Node.js and npm
#    (node-redlock, for the tests of --key beside applications' lock libraries).
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v openssl >/dev/null || missing+=(openssl)
command -v script >/dev/null || missing+=(bsdutils)
command -v groff >/dev/null || missing+=(groff-base)
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v cc >/dev/null || missing+=(gcc)
[ -x /usr/bin/time ] || missing+=(time)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
dist/apt-get-missing install.sh "${missing[@]}"

# 2. The Rust target the README builds for: musl, linked statically (BENCHMARKS.md says why).
target="$(uname -m)-unknown-linux-musl"
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# 3. The lock libraries the --key tests share a lock with: redis-py and node-redlock, pinned,
#    beside the tests (tests/interop).
tests/interop/setup

[ "${1:-}" = "--deps" ] && exit 0

# 4. Build and install redlock into ~/.cargo/bin.
cargo install --locked --path . --target "$target"

# 5. A Redis server on 127.0.0.1:6379, redlock's default: the packaged service, started if it is
#    not running (a machine without systemd does not start it on installation).
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo service redis-server start >/dev/null 2>&1 || redis-server --daemonize yes --save '' >/dev/null
fi

# 6. A first run.
~/.cargo/bin/redlock run --name hello -- echo "hello from inside the lock"
