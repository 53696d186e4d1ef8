#!/usr/bin/env bash
# Smoke test of the container image: build it, run it (with the GPU when the target is gpu), wait for /readyz, make
# one request of each kind (GET /v1/models, POST /v1/text-to-image, POST /v1/super-resolution, GET /metrics), stop
# it gracefully, and print the timings (build, start to listening, start to ready = model load, each request,
# shutdown). Needs Docker (with the NVIDIA Container Toolkit for gpu) or Podman (with CDI specs for gpu), and curl.
#
#   infra/smoke.sh                         build and test the gpu target with docker (or podman)
#   infra/smoke.sh --target cpu            the CPU image (built-in tiny models unless --models is given)
#   infra/smoke.sh --models /srv/models --text-to-image ldm-text2im-large-256-fp16 \
#                  --super-resolution ldm-super-resolution-4x-openimages-fp16
#   infra/smoke.sh --url http://127.0.0.1:8000 --api-key KEY   test a server that is already running
#   infra/smoke.sh --dry-run               print the commands without running any
#
# Exit codes: 0 all passed, 1 a check failed, 2 usage error.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: infra/smoke.sh [options]
  --engine docker|podman   container engine (default: docker if found, else podman)
  --target gpu|cpu         image target (default: gpu)
  --image NAME             image tag to build/run (default: ldm-serve:<target>-smoke)
  --no-build               run an existing image instead of building
  --port N                 host port to publish on 127.0.0.1 (default: 18000)
  --models DIR             host directory of converted models, mounted read-only at /models
  --text-to-image NAME     model directory under --models for text-to-image
  --super-resolution NAME  model directory under --models for super-resolution
  --steps N                num_inference_steps of each request (default: 20)
  --timeout SECONDS        longest wait for /readyz (default: 900)
  --url URL                skip build/run: test the server at URL (no container engine needed)
  --api-key KEY            bearer key (default: a random key passed to the container)
  --out DIR                where responses are written (default: a temporary directory)
  --keep                   leave the container running
  --dry-run                print the commands instead of running them
  -h, --help               this text
EOF
}

die_usage() {
  echo "smoke.sh: $1" >&2
  usage >&2
  exit 2
}

engine="" target="gpu" image="" build=1 port=18000 models="" t2i_model="" sr_model="" steps=20 timeout=900
url="" api_key="" out="" keep=0 dry_run=0

while [ "$#" -gt 0 ]; do
  case "$1" in
    --engine | --target | --image | --port | --models | --text-to-image | --super-resolution | --steps | --timeout | \
      --url | --api-key | --out)
      [ "$#" -ge 2 ] || die_usage "$1 needs a value"
      opt=$1 val=$2
      shift 2
      ;;
    --no-build) build=0; shift; continue ;;
    --keep) keep=1; shift; continue ;;
    --dry-run) dry_run=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
  esac
  case "$opt" in
    --engine) engine=$val ;;
    --target) target=$val ;;
    --image) image=$val ;;
    --port) port=$val ;;
    --models) models=$val ;;
    --text-to-image) t2i_model=$val ;;
    --super-resolution) sr_model=$val ;;
    --steps) steps=$val ;;
    --timeout) timeout=$val ;;
    --url) url=${val%/} ;;
    --api-key) api_key=$val ;;
    --out) out=$val ;;
  esac
done

case "$target" in gpu | cpu) ;; *) die_usage "--target must be gpu or cpu: got '$target'" ;; esac
case "$engine" in "" | docker | podman) ;; *) die_usage "--engine must be docker or podman: got '$engine'" ;; esac
if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  die_usage "--port must be 1-65535: got '$port'"
fi
if ! [[ "$steps" =~ ^[0-9]{1,4}$ ]] || [ "$steps" -lt 1 ]; then
  die_usage "--steps must be a positive integer: got '$steps'"
fi
if ! [[ "$timeout" =~ ^[0-9]{1,6}$ ]] || [ "$timeout" -lt 1 ]; then
  die_usage "--timeout must be a positive integer: got '$timeout'"
fi
if [ -n "$t2i_model" ] || [ -n "$sr_model" ]; then
  [ -n "$models" ] || die_usage "--text-to-image/--super-resolution name directories under --models"
fi
if [ -n "$url" ]; then
  [[ "$url" =~ ^https?:// ]] || die_usage "--url must start with http:// or https://: got '$url'"
  [ -n "$api_key" ] || die_usage "--url needs --api-key (the server's key)"
  [ -z "$engine" ] || die_usage "--url tests a running server: drop --engine"
fi
if [ -n "$api_key" ] && [ "${#api_key}" -lt 16 ]; then
  die_usage "--api-key must be at least 16 characters (the server refuses shorter keys)"
fi

# Everything below goes through run(), which only prints under --dry-run.
run() {
  if [ "$dry_run" -eq 1 ]; then
    {
      printf '+'
      printf ' %q' "$@"
      printf '\n'
    } >&2
    return 0
  fi
  "$@"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

timings=()
record() {
  timings+=("$(awk -v l="$1" -v v="$2" 'BEGIN { printf "%-38s %9.2f s", l, v }')")
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
container=""

if [ -z "$url" ]; then
  if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1; then engine=docker
    elif command -v podman >/dev/null 2>&1; then engine=podman
    elif [ "$dry_run" -eq 1 ]; then engine=docker
    else
      echo "smoke.sh: neither docker nor podman is installed (use --url to test a running server)" >&2
      exit 1
    fi
  fi
  if [ "$dry_run" -eq 0 ] && ! command -v "$engine" >/dev/null 2>&1; then
    echo "smoke.sh: $engine is not installed" >&2
    exit 1
  fi
  [ -n "$image" ] || image="ldm-serve:${target}-smoke"
  [ -n "$api_key" ] || api_key="smoke-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  url="http://127.0.0.1:${port}"
fi
command -v curl >/dev/null 2>&1 || [ "$dry_run" -eq 1 ] || { echo "smoke.sh: curl is required" >&2; exit 1; }

if [ -z "$out" ]; then
  if [ "$dry_run" -eq 1 ]; then out=/tmp/ldm-smoke; else out=$(mktemp -d "${TMPDIR:-/tmp}/ldm-smoke.XXXXXX"); fi
fi
[ "$dry_run" -eq 1 ] || mkdir -p "$out"

cleanup() {
  if [ -n "$container" ] && [ "$keep" -eq 0 ]; then
    run "$engine" rm -f "$container" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if [ -n "$engine" ]; then
  if [ "$build" -eq 1 ]; then
    t0=$(now)
    run "$engine" build -f "$repo_root/infra/docker/Dockerfile" --target "$target" -t "$image" "$repo_root"
    record "image build" "$(elapsed "$t0" "$(now)")"
  fi
  container="ldm-smoke-$$"
  args=(run -d --name "$container" -p "127.0.0.1:${port}:8000" -e "LDM_API_KEYS=${api_key}" -e LDM_LOG_LEVEL=info)
  if [ "$target" = gpu ]; then
    if [ "$engine" = docker ]; then
      args+=(--gpus all -e "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics")
    else
      args+=(--device nvidia.com/gpu=all -e "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics")
    fi
  fi
  if [ -n "$models" ]; then
    args+=(-v "${models}:/models:ro")
    [ -z "$t2i_model" ] || args+=(-e "LDM_TEXT_TO_IMAGE_MODEL_DIR=/models/${t2i_model}")
    [ -z "$sr_model" ] || args+=(-e "LDM_SUPER_RESOLUTION_MODEL_DIR=/models/${sr_model}")
  fi
  started=$(now)
  run "$engine" "${args[@]}" "$image" >/dev/null
fi
[ -n "${started:-}" ] || started=$(now)

fail() {
  echo "smoke.sh: FAILED: $1" >&2
  if [ -n "$container" ] && [ "$dry_run" -eq 0 ]; then
    echo "--- last container logs ---" >&2
    "$engine" logs --tail 50 "$container" >&2 || true
  fi
  exit 1
}

# Waits for GET $1 to answer 200; prints the seconds since the container started.
wait_for() {
  local path=$1 deadline code
  if [ "$dry_run" -eq 1 ]; then
    run curl -fsS "${url}${path}"
    echo "0.00"
    return 0
  fi
  deadline=$(($(date +%s) + timeout))
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${url}${path}" || true)
    [ "$code" = 200 ] && break
    if [ -n "$container" ] && [ "$("$engine" inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != true ]; then
      fail "the container exited before ${path} answered 200"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || fail "${path} did not answer 200 within ${timeout}s (last status ${code})"
    sleep 1
  done
  elapsed "$started" "$(now)"
}

t=$(wait_for /healthz)
record "start to /healthz 200 (listening)" "$t"
t=$(wait_for /readyz)
record "start to /readyz 200 (models loaded)" "$t"

# One request: prints "<status> <seconds>" and keeps the body in $out/<name>.
request() {
  local name=$1
  shift
  if [ "$dry_run" -eq 1 ]; then
    run curl -sS -o "$out/$name" -w '%{http_code} %{time_total}' -H "authorization: Bearer <key>" "$@"
    echo "200 0.00"
    return 0
  fi
  curl -sS -o "$out/$name" -w '%{http_code} %{time_total}' -H "authorization: Bearer ${api_key}" "$@" ||
    echo "000 0"
}

check() {
  local label=$1 result=$2 status
  status=${result%% *}
  [ "$status" = 200 ] || fail "$label answered HTTP $status (body in $out)"
  record "$label" "${result#* }"
}

check "GET /v1/models" "$(request models.json "${url}/v1/models")"
check "POST /v1/text-to-image" "$(request text-to-image.png -H 'content-type: application/json' -H 'accept: image/png' \
  --data "{\"prompt\":\"a big red circle on a blue background\",\"num_inference_steps\":${steps},\"seed\":1}" \
  "${url}/v1/text-to-image")"
if [ "$dry_run" -eq 0 ]; then
  [ "$(head -c 8 "$out/text-to-image.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "text-to-image did not return a PNG"
fi
# The generated image is the super-resolution input (at least 32×32 for both the built-in and the real models).
check "POST /v1/super-resolution" "$(request super-resolution.png -H 'content-type: image/png' -H 'accept: image/png' \
  --data-binary "@$out/text-to-image.png" "${url}/v1/super-resolution?num_inference_steps=${steps}&seed=1")"
if [ "$dry_run" -eq 0 ]; then
  [ "$(head -c 8 "$out/super-resolution.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "super-resolution did not return a PNG"
fi
check "GET /metrics" "$(request metrics.txt "${url}/metrics")"
if [ "$dry_run" -eq 0 ]; then
  grep -q '^ldm_queue_depth ' "$out/metrics.txt" || fail "/metrics has no ldm_queue_depth"
  grep -q '^ldm_images_total{' "$out/metrics.txt" || fail "/metrics counted no images"
fi

if [ -n "$container" ]; then
  t0=$(now)
  run "$engine" stop -t 60 "$container" >/dev/null
  record "graceful stop (SIGTERM to exit)" "$(elapsed "$t0" "$(now)")"
  if [ "$dry_run" -eq 0 ]; then
    code=$("$engine" inspect -f '{{.State.ExitCode}}' "$container")
    [ "$code" = 0 ] || fail "the server exited with code $code after SIGTERM"
  fi
fi

if [ "$dry_run" -eq 1 ]; then
  echo "dry run: the commands above (on stderr) were printed, not run"
  exit 0
fi
echo "smoke test passed against ${url}${engine:+ (${engine}, target ${target}, image ${image})}"
printf '%s\n' "${timings[@]}"
echo "responses in $out"
