# Sourced by scripts/*: creates .venv and installs the project with the tested pins.
# Reinstalls only when pyproject.toml, constraints.txt or requirements-nodeps.txt changed since
# the last install.
PY=${PYTHON:-python3}
venv_inputs=(pyproject.toml constraints.txt requirements-nodeps.txt)
stamp=.venv/.installed-$(cat "${venv_inputs[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # the distribution was named `resilience` before (a name another project holds)
  .venv/bin/python -m pip uninstall -q -y --disable-pip-version-check resilience 2>/dev/null || true
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
  # what pip cannot resolve beside the project (the file says why): known, so not warned about
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt --no-deps \
    --no-warn-conflicts -r requirements-nodeps.txt
  rm -f .venv/.installed-*; touch "$stamp"
fi
