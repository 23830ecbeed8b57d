# Shared by scripts/test.sh and scripts/run.sh: installs what the project's
# tools need on a Debian machine. Source it; do not run it.

log() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the given Debian packages when the command named before each is
# missing: ensure_debian_packages promtool:prometheus ...
ensure_debian_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"
    fi
}

# Creates .venv with the AWS emulator's requirements, again whenever the
# requirements file changes.
prepare_venv() {
    local requirements=tests/harness/requirements.txt
    local stamp=.venv/.requirements.sha256
    local wanted
    wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
        return
    fi
    log "creating .venv from $requirements"
    rm -rf .venv
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
}
