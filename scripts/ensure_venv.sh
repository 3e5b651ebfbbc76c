# Sourced by run_tests.sh and run_demo.sh: creates .venv and installs
# requirements.txt when the venv is missing or requirements.txt changed.
# The install goes through uv (from PyPI, into the venv): it unpacks TensorFlow's ~2 GB in
# parallel and compiles the bytecode up front (measured here: 29 s against pip's 78 s);
# where uv cannot be installed or fails, pip does the install.
PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements into .venv (about half a minute on a fresh machine) ..."
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  if .venv/bin/python -m pip install --quiet uv &&
     .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python -r requirements.txt; then
    :
  else
    echo "[setup] uv could not install the requirements (above); installing with pip ..."
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt
  fi
  echo "$want" > "$stamp"
fi
