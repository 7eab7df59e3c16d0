#!/usr/bin/env bash
# Usage: scripts/install_wordnet.sh DEST
# Puts WordNet 3.0 (Debian's wordnet-base + wordnet-sense-index) plus the shipped `lexnames`
# into DEST, the layout NLTK's WordNet reader wants. Needs apt-get (the project's machines run
# as root); without it, METEOR is reported as null with a note rather than silently 0.
set -euo pipefail
dest=${1:?usage: install_wordnet.sh DEST}
mkdir -p "$dest" && dest=$(cd "$dest" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
lexnames="$here/training/data/wordnet/lexnames"
if [ -f "$dest/index.sense" ] && [ -f "$dest/data.noun" ] && [ -f "$dest/lexnames" ]; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_wordnet: apt-get not found; METEOR will be null (see README, Troubleshooting)" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download wordnet-base wordnet-sense-index >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq >/dev/null
  apt-get download wordnet-base wordnet-sense-index >/dev/null
fi
for deb in ./*.deb; do dpkg -x "$deb" unpacked; done
mkdir -p "$dest"
cp unpacked/usr/share/wordnet/* "$dest/"
cp "$lexnames" "$dest/lexnames"
echo "install_wordnet: WordNet installed in $dest"
