# Sourced by scripts/*: creates .venv and installs the project with the tested pins.
# Reinstalls only when pyproject.toml or constraints.txt changed since the last install.
PY=${PYTHON:-python3}
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # the distribution was named `resilience` before (a name another project holds)
  .venv/bin/python -m pip uninstall -q -y --disable-pip-version-check resilience 2>/dev/null || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
  rm -f .venv/.installed-*; touch "$stamp"
fi
