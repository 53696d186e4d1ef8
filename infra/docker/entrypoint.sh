#!/bin/sh
# Container entrypoint (run under tini): makes the NVIDIA Vulkan driver visible to onnxruntime's WebGPU provider
# (Dawn on Vulkan), then execs the command, by default `deno task serve`.
#
# The NVIDIA container runtime mounts the driver's Vulkan ICD manifest (nvidia_icd.json) when
# NVIDIA_DRIVER_CAPABILITIES includes "graphics", but where it lands differs: /etc/vulkan/icd.d or
# /usr/share/vulkan/icd.d with the container toolkit, /usr/local/nvidia/share/vulkan/icd.d on GKE-style driver
# installs. Some toolkit versions mount libGLX_nvidia.so.0 but no manifest; then one is written to a temporary file.
# Nothing is changed when VK_DRIVER_FILES or VK_ICD_FILENAMES is already set.
#
# VULKAN_ICD_CANDIDATES (space-separated paths) overrides the manifest search list; ENTRYPOINT_DRY_RUN=1 prints
# the resulting variables instead of running the command (used by the tests).
set -eu

candidates=${VULKAN_ICD_CANDIDATES:-"/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json"}
egl_candidates=${EGL_VENDOR_CANDIDATES:-"/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json"}

note() {
  printf '{"level":"%s","msg":"%s","source":"entrypoint"}\n' "$1" "$2" >&2
}

wants_webgpu() {
  providers=$(printf '%s' "${LDM_EXECUTION_PROVIDERS:-}" | tr -d ' ' | tr '[:upper:]' '[:lower:]')
  case ",$providers," in
    *,webgpu,*) return 0 ;;
    *) return 1 ;;
  esac
}

if [ -z "${VK_DRIVER_FILES:-}" ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then
  for f in $candidates; do
    if [ -f "$f" ]; then
      VK_DRIVER_FILES=$f
      export VK_DRIVER_FILES
      break
    fi
  done
  if [ -z "${VK_DRIVER_FILES:-}" ] && command -v ldconfig >/dev/null 2>&1 &&
    ldconfig -p 2>/dev/null | grep -q 'libGLX_nvidia\.so\.0'; then
    icd=$(mktemp "${TMPDIR:-/tmp}/nvidia_icd.XXXXXX")
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.3"}}\n' >"$icd"
    VK_DRIVER_FILES=$icd
    export VK_DRIVER_FILES
  fi
  if [ -z "${VK_DRIVER_FILES:-}" ] && wants_webgpu; then
    note warn "no NVIDIA Vulkan driver found (is NVIDIA_DRIVER_CAPABILITIES missing graphics?): the webgpu provider will be skipped"
  fi
fi

if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ]; then
  for f in $egl_candidates; do
    if [ -f "$f" ]; then
      __EGL_VENDOR_LIBRARY_FILENAMES=$f
      export __EGL_VENDOR_LIBRARY_FILENAMES
      break
    fi
  done
fi

if [ "$#" -eq 0 ]; then
  set -- deno task serve
fi

if [ "${ENTRYPOINT_DRY_RUN:-0}" = "1" ]; then
  printf 'VK_DRIVER_FILES=%s\n' "${VK_DRIVER_FILES:-}"
  printf '__EGL_VENDOR_LIBRARY_FILENAMES=%s\n' "${__EGL_VENDOR_LIBRARY_FILENAMES:-}"
  printf 'exec'
  printf ' %s' "$@"
  printf '\n'
  exit 0
fi

exec "$@"
