# Sourced by scripts/test and scripts/lint-infra: puts ./.venv on PATH with the Python
# packages of the requirement files given, installing them when a file has changed since
# the last install. Needs only Python 3 and the PyPI registry.
venv_with() {
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  local req marker
  for req in "$@"; do
    marker=".venv/.installed-$(basename "$req")"
    if ! cmp -s "$req" "$marker"; then
      .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
      cp "$req" "$marker"
    fi
  done
  export PATH="$PWD/.venv/bin:$PATH"
}
