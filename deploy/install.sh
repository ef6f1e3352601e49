#!/usr/bin/env bash
# Installs pgferry for one role (agent or server): the program under <prefix>/lib/pgferry, a `pgferry`
# wrapper in <prefix>/bin, a system user, a config file with every option commented, and a systemd unit.
# With --recover (agent role) it then restores a snapshot from the backup server into the new primary
# before the agent is started ("install in recovery mode").
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<EOF
Usage: install.sh --role agent|server [options] [--recover recovery options]

Installs pgferry from a built checkout or an unpacked release (the folder above this script, or --from).

Options:
  --role agent|server   what this machine runs (required)
  --prefix DIR          installation prefix (default /opt/pgferry): DIR/lib/pgferry, DIR/bin/pgferry
  --config-dir DIR      where <role>.yaml goes (default /etc/pgferry as root, else DIR/etc)
  --config FILE         install this <role>.yaml instead of the commented example (an existing one is kept
                        as <role>.yaml.bak)
  --from DIR            the pgferry package to install (default: ${SCRIPT_DIR%/deploy})
  --npm-ci              install dependencies with "npm ci --omit=dev" instead of copying them from --from
  --user NAME           system user the service runs as (default pgferry)
  --no-user             do not create the system user
  --no-systemd          do not install the systemd unit (also skipped when systemd is not running)
  --start               start the service at the end (after the recovery with --recover)
  --test-mode           for tests: --no-user --no-systemd, config under the prefix, nothing outside it
  -h, --help            this text

Recovery (agent role): --recover, then the options of "pgferry recover":
  --host H [--port 2121] [--ftp-user backup] [--password-file F] [--source NAME]
  (--latest | --snapshot ID) [--target URL] [--force] [--app-version V] [--require-tls]
  [--tls-fingerprint SHA256] [--tls-ca-file F] [--tls-insecure] [--work-dir DIR] [--jobs N]
  --target defaults to source.url of the agent config. The FTP password comes from
  PGFERRY_FTP_PASSWORD, --password-file, or a prompt.

Examples:
  sudo deploy/install.sh --role server
  sudo deploy/install.sh --role agent --config ./agent.yaml --start
  # a new monitoring host after the old one died: install, restore the newest snapshot, start the agent
  sudo deploy/install.sh --role agent --config ./agent.yaml --recover --host backup.example --latest \\
      --app-version 5.2.1 --start
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}
say() { echo "install.sh: $*"; }

ROLE=""
PREFIX="/opt/pgferry"
CONFIG_DIR=""
CONFIG_FILE=""
FROM="$(cd "$SCRIPT_DIR/.." && pwd)"
NPM_CI=0
SVC_USER="pgferry"
MAKE_USER=1
SYSTEMD=1
START=0
TEST_MODE=0
RECOVER=0
TARGET=""
RECOVER_ARGS=()

need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --role) need "$@"; ROLE="$2"; shift 2 ;;
    --prefix) need "$@"; PREFIX="$2"; shift 2 ;;
    --config-dir) need "$@"; CONFIG_DIR="$2"; shift 2 ;;
    --config) need "$@"; CONFIG_FILE="$2"; shift 2 ;;
    --from) need "$@"; FROM="$2"; shift 2 ;;
    --npm-ci) NPM_CI=1; shift ;;
    --user) need "$@"; SVC_USER="$2"; shift 2 ;;
    --no-user) MAKE_USER=0; shift ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --start) START=1; shift ;;
    --test-mode) TEST_MODE=1; MAKE_USER=0; SYSTEMD=0; shift ;;
    --recover) RECOVER=1; shift ;;
    --target) need "$@"; TARGET="$2"; shift 2 ;;
    --ftp-user) need "$@"; RECOVER_ARGS+=(--user "$2"); shift 2 ;;
    --host | --port | --password-file | --source | --snapshot | --app-version | --tls-fingerprint | \
      --tls-ca-file | --work-dir | --jobs)
      need "$@"; RECOVER_ARGS+=("$1" "$2"); shift 2 ;;
    --latest | --force | --require-tls | --tls-insecure) RECOVER_ARGS+=("$1"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

case "$ROLE" in
  agent | server) ;;
  "") die "--role agent|server is required" ;;
  *) die "--role must be agent or server, not \"$ROLE\"" ;;
esac
if [ "$RECOVER" = 0 ] && [ ${#RECOVER_ARGS[@]} -gt 0 ]; then
  die "${RECOVER_ARGS[0]} is a recovery option: add --recover"
fi
[ "$RECOVER" = 0 ] || [ "$ROLE" = agent ] || die "--recover restores a primary: use it with --role agent"

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
if [ -z "$CONFIG_DIR" ]; then
  if [ "$IS_ROOT" = 1 ] && [ "$TEST_MODE" = 0 ]; then CONFIG_DIR=/etc/pgferry; else CONFIG_DIR="$PREFIX/etc"; fi
fi

# --- prerequisites ------------------------------------------------------------------------------------
NODE="$(command -v node || true)"
[ -n "$NODE" ] || die "node is not installed: install Node.js 20 or newer (e.g. from your distribution or nodejs.org)"
"$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js $("$NODE" --version) is too old: pgferry needs 20 or newer"
[ -f "$FROM/package.json" ] || die "$FROM is not a pgferry package (no package.json): pass --from"
[ -f "$FROM/dist/shared/cli/main.js" ] ||
  die "$FROM has no built program (dist/shared/cli/main.js): run \"npm ci && npm run build\" there first"
[ -f "$FROM/deploy/$ROLE.example.yaml" ] || die "$FROM/deploy/$ROLE.example.yaml is missing"
[ -z "$CONFIG_FILE" ] || [ -r "$CONFIG_FILE" ] || die "--config $CONFIG_FILE is not readable"

LIB="$PREFIX/lib/pgferry"
BIN="$PREFIX/bin"
STAGE="$LIB.new.$$"
trap 'rm -rf "$STAGE"' EXIT

# --- the program --------------------------------------------------------------------------------------
say "installing pgferry $("$NODE" -p "require('$FROM/package.json').version") ($ROLE) into $LIB"
mkdir -p "$STAGE" "$BIN"
cp -a "$FROM/package.json" "$STAGE/"
[ ! -f "$FROM/package-lock.json" ] || cp -a "$FROM/package-lock.json" "$STAGE/"
mkdir -p "$STAGE/dist" "$STAGE/deploy"
for d in agent backup-server shared package.json; do
  [ ! -e "$FROM/dist/$d" ] || cp -a "$FROM/dist/$d" "$STAGE/dist/"
done
# `pgferry demo` runs throwaway PostgreSQL clusters with the test harness; the benchmarks are left out
if [ -d "$FROM/dist/test/harness" ]; then
  mkdir -p "$STAGE/dist/test"
  cp -a "$FROM/dist/test/harness" "$STAGE/dist/test/"
fi
cp -a "$FROM/deploy/." "$STAGE/deploy/"
if [ "$NPM_CI" = 1 ]; then
  (cd "$STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund) || die "npm ci failed in $STAGE"
else
  [ -f "$FROM/package-lock.json" ] && [ -d "$FROM/node_modules" ] ||
    die "$FROM has no node_modules to copy: run \"npm ci\" there, or pass --npm-ci"
  # the production dependencies the lockfile lists (dev-only ones are left out) that are installed here
  "$NODE" -e '
    const lock = require(process.argv[1] + "/package-lock.json");
    const fs = require("fs");
    for (const [p, v] of Object.entries(lock.packages || {})) {
      if (!p || v.dev || !/^node_modules\/(@[^/]+\/)?[^/]+$/.test(p)) continue;
      if (fs.existsSync(process.argv[1] + "/" + p)) console.log(p);
    }' "$FROM" | while read -r pkg; do
    mkdir -p "$STAGE/$(dirname "$pkg")"
    cp -a "$FROM/$pkg" "$STAGE/$pkg"
  done
fi
rm -rf "$LIB.old"
[ ! -d "$LIB" ] || mv "$LIB" "$LIB.old"
mv "$STAGE" "$LIB"
rm -rf "$LIB.old"
trap - EXIT

cat >"$BIN/pgferry.tmp" <<EOF
#!/bin/sh
# pgferry, installed by deploy/install.sh
exec "$NODE" "$LIB/dist/shared/cli/main.js" "\$@"
EOF
chmod 0755 "$BIN/pgferry.tmp"
mv "$BIN/pgferry.tmp" "$BIN/pgferry"
"$BIN/pgferry" --version >/dev/null || die "the installed program does not start: $BIN/pgferry --version failed"

# --- system user --------------------------------------------------------------------------------------
GROUP="$SVC_USER"
if [ "$MAKE_USER" = 1 ] && [ "$IS_ROOT" = 1 ]; then
  if ! id "$SVC_USER" >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/pgferry --no-create-home --shell /usr/sbin/nologin "$SVC_USER" ||
      die "cannot create the system user $SVC_USER (or pass --no-user / --user NAME)"
    say "created system user $SVC_USER"
  fi
  mkdir -p /var/lib/pgferry /var/log/pgferry
  chown "$SVC_USER:$GROUP" /var/lib/pgferry /var/log/pgferry
  chmod 0750 /var/lib/pgferry /var/log/pgferry
elif ! id "$SVC_USER" >/dev/null 2>&1; then
  SVC_USER="$(id -un)"
  GROUP="$(id -gn)"
fi

# --- configuration ------------------------------------------------------------------------------------
mkdir -p "$CONFIG_DIR"
cp "$LIB/deploy/$ROLE.example.yaml" "$CONFIG_DIR/$ROLE.example.yaml"
CONF="$CONFIG_DIR/$ROLE.yaml"
if [ -n "$CONFIG_FILE" ]; then
  [ ! -f "$CONF" ] || cp -p "$CONF" "$CONF.bak"
  cp "$CONFIG_FILE" "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  say "installed $CONF from $CONFIG_FILE"
elif [ ! -f "$CONF" ]; then
  cp "$LIB/deploy/$ROLE.example.yaml" "$CONF"
  say "wrote $CONF (the commented example): edit it before starting the $ROLE"
else
  say "kept the existing $CONF"
fi
chmod 0640 "$CONF"
[ "$IS_ROOT" = 0 ] || chown "root:$GROUP" "$CONF" 2>/dev/null || true

# --- systemd ------------------------------------------------------------------------------------------
UNIT="pgferry-$ROLE.service"
HAVE_SYSTEMD=0
if [ "$SYSTEMD" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  [ "$IS_ROOT" = 1 ] || die "installing $UNIT needs root (or pass --no-systemd)"
  sed -e "s#@BINDIR@#$BIN#g" -e "s#@LIBDIR@#$LIB#g" -e "s#@CONFDIR@#$CONFIG_DIR#g" \
    -e "s#@USER@#$SVC_USER#g" -e "s#@GROUP@#$GROUP#g" \
    "$LIB/deploy/systemd/$UNIT" >"/etc/systemd/system/$UNIT.tmp"
  mv "/etc/systemd/system/$UNIT.tmp" "/etc/systemd/system/$UNIT"
  systemctl daemon-reload
  systemctl enable "$UNIT" >/dev/null
  HAVE_SYSTEMD=1
  say "installed and enabled /etc/systemd/system/$UNIT"
else
  say "systemd unit not installed (--no-systemd, --test-mode, or no systemd running)"
fi

# --- recovery -----------------------------------------------------------------------------------------
if [ "$RECOVER" = 1 ]; then
  if [ -z "$TARGET" ]; then
    TARGET="$("$NODE" -e '
      const YAML = require(process.argv[1] + "/node_modules/yaml");
      const c = YAML.parse(require("fs").readFileSync(process.argv[2], "utf8")) || {};
      process.stdout.write((c.source && c.source.url) || "");' "$LIB" "$CONF")" ||
      die "cannot read source.url from $CONF: pass --target URL"
    [ -n "$TARGET" ] || die "$CONF has no source.url: pass --target URL"
  fi
  say "recovering into the target database before the agent starts"
  "$BIN/pgferry" recover "${RECOVER_ARGS[@]}" --target "$TARGET" ||
    die "the recovery failed (see above); fix the cause and run install.sh again with the same options: the download resumes"
fi

# --- start --------------------------------------------------------------------------------------------
if [ "$START" = 1 ]; then
  if [ "$HAVE_SYSTEMD" = 1 ]; then
    systemctl restart "$UNIT"
    say "started $UNIT (systemctl status $UNIT; journalctl -u $UNIT)"
  else
    say "no systemd unit: start it with: $BIN/pgferry $ROLE --config $CONF"
  fi
else
  say "done. Start it with: $([ "$HAVE_SYSTEMD" = 1 ] && echo "systemctl start $UNIT" || echo "$BIN/pgferry $ROLE --config $CONF")"
fi
