#!/usr/bin/env bash
# The service image: the Bento's own generated Dockerfile, with the Bento's requirements
# replaced by the exact versions uv.lock pins (`bentoml build` with lock_packages: false
# writes them unpinned, so two builds could install different versions). Run it after
# `uv run dvc repro`: the package stage builds the Bento into BentoML's store.
#
#   deploy/docker/build-service-image.sh [IMAGE]         lay out the context and docker build
#   deploy/docker/build-service-image.sh --context DIR   only lay out the build context in DIR
#
# BENTO picks the Bento (default mlstack:latest); BENTOML_HOME the store, as for bentoml.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
uv="${UV:-$root/.venv/bin/uv}"   # the environment's own uv (make install)
[ -x "$uv" ] || uv=uv
bento="${BENTO:-mlstack:latest}"
if [ "${1:-}" = "--context" ]; then
  context="${2:?--context needs a folder}"
  image=""
else
  image="${1:-mlstack-service:latest}"
  context="$(mktemp -d)"
fi
# bentoml prints through rich, which wraps piped output at 80 columns: a long store path
# (a deep BENTOML_HOME) would come back cut in two. COLUMNS widens rich's console.
source="$(cd "$root" && COLUMNS=100000 "$uv" run --locked --no-sync bentoml get "$bento" -o path)"
if [ ! -d "$source" ]; then
  echo "build-service-image.sh: bentoml get $bento -o path gave '$source', not a folder" >&2
  exit 1
fi
mkdir -p "$context"
cp -R "$source/." "$context/"
(cd "$root" && "$uv" export --locked --no-dev --extra s3 --no-emit-project --no-hashes \
  --format requirements-txt --quiet) > "$context/env/python/requirements.txt"
# params.yaml bakes serving.host 127.0.0.1 into the Bento: in a container the service
# must listen on every interface. BENTOML_HOST overrides it (the Deployment sets it too).
printf '\nENV BENTOML_HOST=0.0.0.0\n' >> "$context/env/docker/Dockerfile"
if [ -n "$image" ]; then
  docker build -f "$context/env/docker/Dockerfile" -t "$image" "$context"
else
  echo "$context"
fi
