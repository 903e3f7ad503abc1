#!/bin/sh
# The install steps of docker/Dockerfile. Its RUN lines call this script, and
# tests/integration/test_docker_image.py runs the same script outside Docker (which CI cannot run), so what the
# test proves is what the image does:
#
#   build-steps.sh wheels SOURCE DIR   builder stage: celery-webui's wheel, and a wheel of every dependency, into DIR
#   build-steps.sh install DIR VENV    final stage: a virtualenv at VENV with celery-webui from DIR alone (no index,
#                                      so nothing is compiled and no build tool is needed), then a smoke check
#
# PYTHON names the interpreter (default: python, the base image's).
set -eu
PYTHON=${PYTHON:-python}

case "${1:-}" in
wheels)
    "$PYTHON" -m pip wheel --no-cache-dir --wheel-dir "$3" "$2"
    ;;
install)
    "$PYTHON" -m venv "$3"
    "$3/bin/python" -m pip install --no-cache-dir --no-index --find-links "$2" celery-webui
    # Nothing is installed into the virtualenv at run time, so its own pip goes (the base image keeps its own).
    "$3/bin/python" -m pip uninstall --yes --quiet pip
    "$3/bin/webui" --version
    ;;
*)
    echo "usage: $0 wheels SOURCE DIR | install DIR VENV" >&2
    exit 2
    ;;
esac
