# Shell helpers shared by scripts/setup and scripts/setup-test (sourced, not run).

# ensure_debian_packages WHO PKG...: install the packages that are not installed yet. Costs one
# dpkg-query per package when nothing is missing; apt-get only runs (as root) when something is.
ensure_debian_packages() {
    local who="$1" pkg
    shift
    local missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) -ne 0 ]]; then
        echo "$who: missing Debian packages (${missing[*]}): run this script as root" >&2
        exit 1
    fi
    echo "$who: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# stamp_matches FILE VALUE: whether FILE holds VALUE (a missing file never matches).
stamp_matches() {
    [[ "$(cat "$1" 2>/dev/null || true)" == "$2" ]]
}

# pyproject_digest KEY...: a hash of the tables or lists at the dotted KEYs of pyproject.toml, so
# a stamp changes with them and not with the rest of the file (lint settings, say).
pyproject_digest() {
    python3 - "$@" <<'PY'
import hashlib
import json
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    data = tomllib.load(f)
picked = {}
for key in sys.argv[1:]:
    node = data
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    picked[key] = node
print(hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest())
PY
}

# pyproject_list KEY...: the items of the lists at the dotted KEYs of pyproject.toml, one a line.
pyproject_list() {
    python3 - "$@" <<'PY'
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    data = tomllib.load(f)
for key in sys.argv[1:]:
    node = data
    for part in key.split("."):
        node = node[part]
    print("\n".join(node))
PY
}
