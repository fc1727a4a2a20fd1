#!/usr/bin/env bash
# Build (once) and locate the local control-plane tools from Go modules.
#
#   hack/tools.sh build     build whatever is missing, print nothing else
#   hack/tools.sh bindir    print the directory that holds every tool
#   hack/tools.sh image-tools   install mmdebstrap, umoci and skopeo (make image) when missing
#
# Tools are cached under ${MINERGUARD_CACHE:-~/.cache/minerguard}/tools/<tool>-<version>/,
# keyed by the versions pinned in hack/versions.env, so a second run builds nothing.
# Prometheus, and mmdebstrap/umoci/skopeo for `make image`, come from Debian packages (apt-get)
# and are only installed here when missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

CACHE=${MINERGUARD_CACHE:-$HOME/.cache/minerguard}
TOOLS=$CACHE/tools
BIN=$CACHE/bin
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export CGO_ENABLED=0
export GOTOOLCHAIN=local

log() { printf '[tools] %s\n' "$*" >&2; }

# stamp DIR: the directory is complete once its .done file exists.
done_marker() { printf '%s/.done' "$1"; }

build_etcd() {
  local dir=$TOOLS/etcd-$ETCD_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building etcd $ETCD_VERSION (first run only)"
  local src=$CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$src" "$dir"
  cat >"$src/go.mod" <<EOF
module minerguard.local/etcd

go 1.26
EOF
  cat >"$src/main.go" <<'EOF'
// Command etcd is a thin wrapper around etcdmain, built from the server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (cd "$src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1 &&
    go build -trimpath -ldflags "-s -w" -o "$dir/etcd" .)
  touch "$(done_marker "$dir")"
}

# kube_module SRC CMD...: the wrapper module that builds k8s.io/kubernetes/cmd/CMD at $KUBE_VERSION
# in SRC. The control plane and the kubelet use the same module set and flags, so the kubelet's
# build reuses every package the control plane's build left in the Go build cache.
kube_module() {
  local src=$1
  shift
  mkdir -p "$src"
  (
    cd "$src"
    go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >download.json
    local upstream_mod
    upstream_mod=$(python3 -c 'import json,sys; print(json.load(open("download.json"))["GoMod"])')
    {
      echo "module minerguard.local/kubernetes"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo
      # Each staging module k8s.io/X is published as k8s.io/X $KUBE_STAGING_VERSION.
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream_mod" | awk -v v="$KUBE_STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
    } >go.mod
    {
      echo '//go:build tools'
      echo
      echo '// Package tools pins the Kubernetes commands this wrapper module builds.'
      echo 'package tools'
      echo
      echo 'import ('
      local cmd
      for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
      echo ')'
    } >tools.go
    go mod tidy >/dev/null
  )
}

# kube_build SRC DIR CMD...: go build each CMD of the wrapper module in SRC into DIR.
kube_build() {
  local src=$1 dir=$2
  shift 2
  local minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  local cmd
  for cmd in "$@"; do
    log "  go build $cmd"
    (cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$dir/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
}

build_kube() {
  local dir=$TOOLS/kubernetes-$KUBE_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $KUBE_VERSION (first run only, several minutes)"
  local src=$CACHE/src/kubernetes-$KUBE_VERSION
  mkdir -p "$dir"
  kube_module "$src" kube-apiserver kube-controller-manager kube-scheduler kubectl
  kube_build "$src" "$dir" kube-apiserver kube-controller-manager kube-scheduler kubectl
  touch "$(done_marker "$dir")"
}

# The real node (hack/realnode.py): the kubelet, containerd and kube-router's firewall controller.
build_kubelet() {
  local dir=$TOOLS/kubelet-$KUBE_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building kubelet $KUBE_VERSION (first run only, several minutes)"
  local src=$CACHE/src/kubelet-$KUBE_VERSION
  mkdir -p "$dir"
  kube_module "$src" kubelet
  kube_build "$src" "$dir" kubelet
  touch "$(done_marker "$dir")"
}

# containerd from the Go module proxy (Debian's 1.6 cannot start sandboxes with this runc); the
# storage drivers that need C libraries are left out, the overlayfs/native snapshotters stay.
build_containerd() {
  local dir=$TOOLS/containerd-$CONTAINERD_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building containerd, ctr, containerd-shim-runc-v2 $CONTAINERD_VERSION (first run only)"
  mkdir -p "$dir"
  local v=${CONTAINERD_VERSION#v}
  GOBIN=$dir go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$v" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  touch "$(done_marker "$dir")"
}

# The sandbox ("pause") image's only file: a static binary that reaps children and waits for a signal.
build_pause() {
  local dir=$TOOLS/pause-1
  [ -e "$(done_marker "$dir")" ] && return 0
  local src=$CACHE/src/pause-1
  mkdir -p "$src" "$dir"
  printf 'module minerguard.local/pause\n\ngo 1.26\n' >"$src/go.mod"
  cat >"$src/main.go" <<'EOF'
// Command pause holds a pod's namespaces: it reaps its children and exits on SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			if pid, _ := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
	}
}
EOF
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$dir/pause" .)
  touch "$(done_marker "$dir")"
}

build_kube_router() {
  local dir=$TOOLS/kube-router-$KUBE_ROUTER_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building kube-router $KUBE_ROUTER_VERSION (first run only)"
  mkdir -p "$dir"
  GOBIN=$dir go install -trimpath -ldflags "-s -w" "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
  touch "$(done_marker "$dir")"
}

build_kwok() {
  local dir=$TOOLS/kwok-$KWOK_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building kwok, kwokctl $KWOK_VERSION (first run only)"
  mkdir -p "$dir"
  GOBIN=$dir go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  touch "$(done_marker "$dir")"
}

# KWOK's own stage definitions (node initialisation, heartbeats with leases, the
# fast pod lifecycle), taken from the module at the pinned version.
kwok_stages() {
  local out=$TOOLS/kwok-$KWOK_VERSION/stages.yaml
  [ -s "$out" ] && return 0
  local moddir
  moddir=$(cd "$TOOLS" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  local f
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    printf -- '---\n'
    cat "$moddir/kustomize/stage/$f"
    printf '\n'
  done >"$out.tmp"
  mv "$out.tmp" "$out"
}

build_helm() {
  local dir=$TOOLS/helm-$HELM_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building helm $HELM_VERSION (first run only)"
  mkdir -p "$dir"
  GOBIN=$dir go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  touch "$(done_marker "$dir")"
}

# actionlint lints .github/workflows (make lint).
build_actionlint() {
  local dir=$TOOLS/actionlint-$ACTIONLINT_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "building actionlint $ACTIONLINT_VERSION (first run only)"
  mkdir -p "$dir"
  GOBIN=$dir go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  touch "$(done_marker "$dir")"
}

# The PolicyReport CRD (PolicyReports e2e): copied out of the Kyverno Go module (go mod download),
# the one module the proxy serves that ships the wgpolicyk8s.io CRDs.
fetch_policyreport_crd() {
  local dir=$TOOLS/policyreport-crd-$KYVERNO_CRDS_VERSION
  [ -e "$(done_marker "$dir")" ] && return 0
  log "fetching the PolicyReport CRD from github.com/kyverno/kyverno@$KYVERNO_CRDS_VERSION (first run only)"
  mkdir -p "$dir"
  local mod
  mod=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "github.com/kyverno/kyverno@$KYVERNO_CRDS_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  cp "$mod/config/crds/policyreport/wgpolicyk8s.io_policyreports.yaml" "$dir/"
  chmod 0644 "$dir/wgpolicyk8s.io_policyreports.yaml"
  touch "$(done_marker "$dir")"
}

# system_tool NAME: the first NAME on PATH outside $BIN (make puts $BIN first on PATH, and a link
# of $BIN must never be taken for the tool it points to).
system_tool() {
  local p
  for p in $(type -ap "$1" 2>/dev/null); do
    case "$p" in "$BIN"/*) continue ;; esac
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

check_prometheus() {
  if ! system_tool prometheus >/dev/null; then
    log "installing prometheus from Debian packages"
    apt_install prometheus
  fi
  system_tool prometheus >/dev/null || { log "prometheus is not installed and could not be installed"; exit 1; }
}

# apt_install PKG...: Debian packages, as root or through sudo.
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# docker-registry (distribution 2.8): the real registry on loopback that tests/e2e/test_images.py
# pushes test images to and the operator reads image configs from (issue #13).
check_registry() {
  system_tool docker-registry >/dev/null && return 0
  log "installing docker-registry from Debian packages (the image-inspection tests' registry)"
  apt_install docker-registry
  system_tool docker-registry >/dev/null || { log "docker-registry is not installed and could not be installed"; exit 1; }
}

# mmdebstrap, umoci and skopeo build the operator image without Docker (make image).
check_image_tools() {
  local missing=() t
  for t in mmdebstrap umoci skopeo; do system_tool "$t" >/dev/null || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} from Debian packages (make image)"
  apt_install "${missing[@]}"
  for t in "${missing[@]}"; do
    system_tool "$t" >/dev/null || { log "$t is not installed and could not be installed"; exit 1; }
  done
}

# link NAME TARGET: point $BIN/NAME at TARGET. A no-op when it already does; otherwise an
# atomic rename, so a concurrent run never sees the link missing.
link() {
  local name=$1 target=$2
  [ "$(readlink "$BIN/$name" 2>/dev/null)" = "$target" ] && return 0
  ln -s "$target" "$BIN/.$name.$$"
  mv -T "$BIN/.$name.$$" "$BIN/$name"
}

link_all() {
  mkdir -p "$BIN"
  local f
  for f in "$TOOLS/etcd-$ETCD_VERSION/etcd" \
    "$TOOLS/kubernetes-$KUBE_VERSION"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl} \
    "$TOOLS/kwok-$KWOK_VERSION"/{kwok,kwokctl,stages.yaml} "$TOOLS/helm-$HELM_VERSION/helm" \
    "$TOOLS/actionlint-$ACTIONLINT_VERSION/actionlint" \
    "$TOOLS/policyreport-crd-$KYVERNO_CRDS_VERSION/wgpolicyk8s.io_policyreports.yaml"; do
    link "$(basename "$f")" "$f"
  done
  link prometheus "$(system_tool prometheus)"
  link promtool "$(system_tool promtool)"
}

# Debian's runc, CNI plugins (ptp, host-local, loopback), ipset and iptables for kube-router,
# conntrack to inspect the node's connection tracking, socat for the loopback bridges.
check_real_node_packages() {
  local missing=() t
  for t in runc ipset iptables conntrack socat; do system_tool "$t" >/dev/null || missing+=("$t"); done
  [ -x /usr/lib/cni/ptp ] || missing+=(containernetworking-plugins)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} from Debian packages (the real node)"
  apt_install "${missing[@]}"
}

link_real_node() {
  mkdir -p "$BIN"
  local f
  for f in "$TOOLS/kubelet-$KUBE_VERSION/kubelet" \
    "$TOOLS/containerd-$CONTAINERD_VERSION"/{containerd,ctr,containerd-shim-runc-v2} \
    "$TOOLS/kube-router-$KUBE_ROUTER_VERSION/kube-router" "$TOOLS/pause-1/pause"; do
    link "$(basename "$f")" "$f"
  done
}

case "${1:-build}" in
  image-tools) check_image_tools ;;
  build)
    # One build at a time per cache: a second run (another checkout, a test session) waits for the
    # first and then finds everything built, instead of compiling the same binaries beside it.
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.build.lock"
    flock 9
    check_prometheus
    check_registry
    check_image_tools
    build_etcd
    build_kwok
    kwok_stages
    build_helm
    build_actionlint
    build_kube
    fetch_policyreport_crd
    link_all
    ;;
  real-node)
    # The real node's tools, under their own lock so that `make test` can build them while the
    # KWOK tests run. The kubelet waits for the control plane's build (same packages, same cache).
    mkdir -p "$CACHE"
    exec 8>"$CACHE/.build-real-node.lock"
    flock 8
    check_real_node_packages
    build_pause
    build_containerd
    build_kube_router
    flock "$CACHE/.build.lock" true
    build_kubelet
    link_real_node
    ;;
  bindir) echo "$BIN" ;;
  *) echo "usage: $0 build|bindir|image-tools|real-node" >&2; exit 2 ;;
esac
