#!/usr/bin/env bash
# Installs what coroner's tests and crash lab need on Debian/Ubuntu (as root; as another
# user it only lists what is missing). Go itself (1.26+) must already be installed.
set -euo pipefail
pkgs=(nginx php8.2-fpm php8.2-opcache php8.2-cli apache2 libapache2-mod-php8.2 elfutils debuginfod dwz libpcre2-dev gdb gcc g++ clang binutils curl zstd lz4 xz-utils postgresql chromium systemd-journal-remote)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    # Not root: nothing can be installed. The tests that need a missing tool skip and say so.
    echo "deps: not root, so not installing: ${missing[*]} (tests that need them will be skipped; run make deps as root)" >&2
    exit 0
  fi
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# promtool checks dist/prometheus/alerts.yml. Debian ships it in the prometheus package, whose
# install would start a Prometheus server: take promtool alone out of the package instead.
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ]; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1); then
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xO ./usr/bin/promtool >/usr/local/bin/promtool
    chmod 755 /usr/local/bin/promtool
  else
    echo "deps: could not download Debian's prometheus package: promtool missing (TestAlertRules skips its checks)" >&2
  fi
  rm -rf "$tmp"
fi
# coredumpctl is the oracle of the cores coroner reads from the journal (TestJournalCoreMatchesCoredumpctl).
# Debian ships it in systemd-coredump, whose install would take over kernel.core_pattern (machine-wide):
# take coredumpctl alone out of the package instead.
if ! command -v coredumpctl >/dev/null && [ "$(id -u)" = 0 ]; then
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -qq systemd-coredump >/dev/null 2>&1); then
    dpkg-deb --fsys-tarfile "$tmp"/systemd-coredump_*.deb | tar -xO ./usr/bin/coredumpctl >/usr/local/bin/coredumpctl
    chmod 755 /usr/local/bin/coredumpctl
  else
    echo "deps: could not download Debian's systemd-coredump package: coredumpctl missing (TestJournalCoreMatchesCoredumpctl skips)" >&2
  fi
  rm -rf "$tmp"
fi
command -v go >/dev/null || { echo "Go 1.26+ is required (https://go.dev/dl/)" >&2; exit 1; }
