#!/bin/bash
# The Debian copyright file (machine-readable format, DEP-5) of a coroner binary, on standard
# output: coroner's own stanza, then one stanza per third-party Go module compiled into the
# binary (and per directory of a module that carries its own license file), with the license
# texts from the module cache, and the Go standard library's. Which modules: the packages
# `go list -deps` builds into cmd/coroner for the binary's GOOS/GOARCH, checked against the
# modules the binary itself records (`go version -m`).
# usage: scripts/copyright.sh BINARY
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: scripts/copyright.sh BINARY" >&2; exit 2; }
bin=$1
go=${GO:-go}
info=$("$go" version -m "$bin")
goos=$(awk '$1 == "build" && $2 ~ /^GOOS=/ { sub(/^GOOS=/, "", $2); print $2 }' <<< "$info")
goarch=$(awk '$1 == "build" && $2 ~ /^GOARCH=/ { sub(/^GOARCH=/, "", $2); print $2 }' <<< "$info")
[ -n "$goos" ] && [ -n "$goarch" ] || { echo "copyright: $bin records no GOOS/GOARCH" >&2; exit 1; }
# The modules the binary records (replacements: the module that was built).
recorded=$(awk '$1 == "dep" { if (m != "") print m; m = $2 " " $3 } $1 == "=>" { m = $2 " " $3 }
  END { if (m != "") print m }' <<< "$info" | LC_ALL=C sort)

# Every package built into the binary: module path, version, module directory, package directory.
pkgs=$(CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOFLAGS=-mod=mod GOPROXY=off "$go" list -deps \
  -f '{{with .Module}}{{if not .Main}}{{with .Replace}}{{.Path}} {{.Version}} {{.Dir}}{{else}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}{{end}}	{{.Dir}}' \
  ./cmd/coroner | awk -F'\t' '$1 != ""')
built=$(cut -f1 <<< "$pkgs" | awk '{ print $1, $2 }' | LC_ALL=C sort -u)
if [ "$built" != "$recorded" ]; then
  echo "copyright: the modules go list builds differ from those $bin records:" >&2
  diff <(echo "$recorded") <(echo "$built") >&2 || true
  exit 1
fi

# license_files DIR: the license-like files of one directory.
license_files() {
  local f
  for f in "$1"/[Ll][Ii][Cc][Ee][Nn][CcSs][Ee]* "$1"/[Cc][Oo][Pp][Yy][Ii][Nn][Gg]* "$1"/[Nn][Oo][Tt][Ii][Cc][Ee]* \
    "$1"/[Pp][Aa][Tt][Ee][Nn][Tt][Ss]*; do
    [ -f "$f" ] && [ "${f%.go}" = "$f" ] && printf '%s\n' "${f##*/}"
  done | LC_ALL=C sort
}

# short_name FILE: the license's short name (DEP-5 / SPDX), from its text; a file that holds
# several licenses (one per part of the module) gets them all, joined with "and".
short_name() {
  local t names=()
  t=$(tr -s ' \n\t' '   ' < "$1")
  case $t in
    *"Redistribution and use in source and binary forms"*"Neither the name"* | \
      *"Redistribution and use in source and binary forms"*"names of its contributors"*) names+=(BSD-3-clause) ;;
    *"Redistribution and use in source and binary forms"*) names+=(BSD-2-clause) ;;
  esac
  case $t in *"Permission is hereby granted, free of charge"*) names+=(Expat) ;; esac
  case $t in *"Apache License"*"Version 2.0"*) names+=(Apache-2.0) ;; esac
  case $t in *"Mozilla Public License"*"2.0"*) names+=(MPL-2.0) ;; esac
  case $t in *"Permission to use, copy, modify, and"*"distribute this software for any purpose"*) names+=(ISC) ;; esac
  case $t in *"author disclaims copyright"*) names+=(public-domain) ;; esac
  [ ${#names[@]} -gt 0 ] || names=(other)
  local IFS=' '
  echo "${names[*]}" | sed 's/ / and /g'
}

# holders FILE...: the copyright lines of license texts, or nothing.
holders() {
  sed -nE 's/^[[:space:]]*(Copyright|COPYRIGHT)[[:space:]]+(\([cC]\)[[:space:]]*|©[[:space:]]*)?([0-9].*|[A-Z].*)$/\3/p' "$@" |
    grep -vE '\[yyyy\]|\{yyyy\}|notice|holders? ' | sed -E 's/[[:space:]]+$//' | awk '!seen[$0]++'
}

# text FILE: the file as the continuation lines of a field (blank lines as " .").
text() {
  sed -E 's/[[:space:]]+$//; s/^$/./; s/^/ /' "$1"
}

# stanza LABEL DIR WHAT: a Files paragraph for the license files of DIR.
stanza() {
  local label=$1 dir=$2 what=$3 files main others h f
  files=$(license_files "$dir")
  [ -n "$files" ] || return 1
  # The license itself first (LICENSE, COPYING), then notices and patent grants.
  main=$(grep -iE '^(licen[cs]e|copying)' <<< "$files" | head -n1 || true)
  main=${main:-$(head -n1 <<< "$files")}
  others=$(grep -vxF "$main" <<< "$files" || true)
  echo
  echo "Files: $label"
  h=$(holders "$dir/$main" || true)
  if [ -n "$h" ]; then
    printf 'Copyright: %s\n' "$(head -n1 <<< "$h")"
    tail -n +2 <<< "$h" | sed 's/^/           /'
  else
    echo "Copyright: the authors of $what (the license text names no holder)"
  fi
  echo "License: $(short_name "$dir/$main")"
  text "$dir/$main"
  echo "Comment: $what, compiled into coroner; license text from its file $main."
  for f in $others; do
    echo " ."
    echo " $f:"
    echo " ."
    text "$dir/$f"
  done
}

cat <<'HEAD'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: coroner
Upstream-Contact: https://github.com/coroner-dev/coroner/issues
Source: https://github.com/coroner-dev/coroner

Files: *
Copyright: the coroner contributors (see the project's git history)
License: none
Comment: The coroner repository has no license file yet: its authors have not
 chosen a license, and this package grants none for coroner's own code. The
 Go modules and the Go standard library compiled into /usr/bin/coroner and
 /usr/lib/coroner/coroner-service keep their own licenses, listed below with
 their texts.
HEAD

# Each module once, and each directory of it that the built packages are in (or under) and
# that carries license files of its own: those apply to that subtree.
declare -A done_dir=()
while IFS=$'\t' read -r mod pdir; do
  read -r path version mdir <<< "$mod"
  [ -n "$mdir" ] && [ -d "$mdir" ] || { echo "copyright: $path $version is not in the module cache" >&2; exit 1; }
  if [ -z "${done_dir[$mdir]:-}" ]; then
    done_dir[$mdir]=1
    stanza "$path/*" "$mdir" "Go module $path $version" ||
      { echo "copyright: $path $version has no license file" >&2; exit 1; }
  fi
  d=$pdir
  while [ "$d" != "$mdir" ] && [ "${d#"$mdir"/}" != "$d" ]; do
    if [ -z "${done_dir[$d]:-}" ]; then
      done_dir[$d]=1
      stanza "$path/${d#"$mdir"/}/*" "$d" "the directory ${d#"$mdir"/} of Go module $path $version" || true
    fi
    d=${d%/*}
  done
done < <(LC_ALL=C sort -u <<< "$pkgs")

goroot=$("$go" env GOROOT)
stanza "go/*" "$goroot" "The Go standard library and runtime $("$go" env GOVERSION)"
