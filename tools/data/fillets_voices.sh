#!/usr/bin/env bash
# Real recorded speech for the real-audio pipeline (pipelines/fillets_voices.yaml):
# the voice actors of the game Fish Fillets NG, from Debian's packages
# fillets-ng-data-cs (Czech dialogue) and fillets-ng-data-nl (Dutch dialogue),
# GPL-2. Every line of dialogue is spoken by one of the two fish, and the file
# name says which: <level>-m-<line>.ogg is the small fish, <level>-v-<line>.ogg
# the big fish (Czech "malá"/"velká"). Four speakers, one category each:
#
#   data/fillets_voices/cs-small-fish/<level>-<file>.wav
#   data/fillets_voices/cs-big-fish/…
#   data/fillets_voices/nl-small-fish/…
#   data/fillets_voices/nl-big-fish/…
#
# Each category gets PER_CATEGORY clips (default 300) lasting MIN_S to MAX_S
# seconds (default 1–6 s), picked evenly from the category's files sorted by
# path (so the same packages always give the same files), converted to 16 kHz
# mono 16-bit WAV with sox (no dither, repeatable mode: the same bytes each
# time), with leading and trailing silence cut (about a quarter of the audio).
#
# Usage: tools/data/fillets_voices.sh [OUT_DIR]     (default: the project's data/fillets_voices, wherever it runs)
# Environment: PER_CATEGORY, MIN_S, MAX_S; DEB_CACHE (default data/.cache/debs)
#
# Needs: apt-get (with package lists: run `apt-get update` once), dpkg-deb,
# sox and soxi with Ogg Vorbis support (Debian: apt-get install sox
# libsox-fmt-all). Downloads 72 MB once (the .debs are kept in DEB_CACHE and
# checked against the sha256 sums below). Idempotent: a finished folder holds
# a .done stamp with its settings and is left alone when they match; otherwise
# it is rebuilt in a temporary folder and renamed into place.
set -euo pipefail

OUT="${1:-$(cd "$(dirname "$0")/../.." && pwd)/data/fillets_voices}"
PER_CATEGORY="${PER_CATEGORY:-300}"
MIN_S="${MIN_S:-1}"
MAX_S="${MAX_S:-6}"
DEB_CACHE="${DEB_CACHE:-data/.cache/debs}"
VERSION="1.0.1-1.1"
declare -A SHA256=(
  [cs]=3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14
  [nl]=afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10
)

die() {
  echo "fillets_voices: $*" >&2
  exit 1
}

for tool in apt-get dpkg-deb sox soxi sha256sum awk sort; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "'$tool' is not installed (Debian: apt-get install -y sox libsox-fmt-all; apt-get and dpkg-deb come with Debian/Ubuntu)"
done
sox -h 2>/dev/null | grep -q 'FILE FORMATS.*vorbis\|vorbis' ||
  die "sox cannot read Ogg Vorbis (Debian: apt-get install -y libsox-fmt-all)"

STAMP="trim=1%/20ms per_category=$PER_CATEGORY min_s=$MIN_S max_s=$MAX_S version=$VERSION sha256=${SHA256[cs]},${SHA256[nl]}"
if [[ -f "$OUT/.done" && "$(cat "$OUT/.done")" == "$STAMP" ]]; then
  echo "fillets_voices: $OUT is up to date ($STAMP)"
  exit 0
fi

mkdir -p "$DEB_CACHE"
for lang in cs nl; do
  deb="$DEB_CACHE/fillets-ng-data-${lang}_${VERSION}_all.deb"
  if [[ ! -f "$deb" ]] || ! echo "${SHA256[$lang]}  $deb" | sha256sum -c --status; then
    rm -f "$deb"
    echo "fillets_voices: downloading fillets-ng-data-$lang=$VERSION"
    (cd "$DEB_CACHE" && apt-get download "fillets-ng-data-$lang=$VERSION") ||
      die "apt-get download fillets-ng-data-$lang=$VERSION failed (run 'apt-get update' first; the package must be in your sources: Debian bookworm/trixie main)"
  fi
  echo "${SHA256[$lang]}  $deb" | sha256sum -c --status ||
    die "$deb does not have the expected sha256 ${SHA256[$lang]}"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fillets_voices.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
NEW="$OUT.partial.$$"
rm -rf "$NEW"
trap 'rm -rf "$WORK" "$NEW"' EXIT

for lang in cs nl; do
  dpkg-deb -x "$DEB_CACHE/fillets-ng-data-${lang}_${VERSION}_all.deb" "$WORK/$lang"
  sounds="$WORK/$lang/usr/share/games/fillets-ng/sound"
  [[ -d "$sounds" ]] || die "unexpected package layout: no $sounds"
  for role in small big; do
    code=m
    [[ $role == big ]] && code=v
    category="$lang-$role-fish"
    mkdir -p "$NEW/$category"
    # <sound>/<level>/<lang>/<prefix>-<m|v>-<line>.ogg (or <m|v>-<line>.ogg)
    (cd "$sounds" && find . -path "./*/$lang/*.ogg" -type f | LC_ALL=C sort) |
      grep -E "/([^/-]+-)?$code-[^/]+\.ogg$" >"$WORK/$category.all"
    # Durations as the package has them (before trimming), one soxi per 100 files.
    (cd "$sounds" && tr '\n' '\0' <"$WORK/$category.all" | xargs -0 -n 100 soxi -D) \
      >"$WORK/$category.dur"
    [[ $(wc -l <"$WORK/$category.dur") -eq $(wc -l <"$WORK/$category.all") ]] ||
      die "soxi could not read every file of $category"
    paste "$WORK/$category.dur" "$WORK/$category.all" |
      awk -F '\t' -v lo="$MIN_S" -v hi="$MAX_S" '$1 >= lo && $1 <= hi { print $2 }' \
        >"$WORK/$category.ok"
    total=$(wc -l <"$WORK/$category.ok")
    ((total >= PER_CATEGORY)) ||
      die "$category has only $total clips of $MIN_S-$MAX_S s, fewer than PER_CATEGORY=$PER_CATEGORY"
    # PER_CATEGORY files evenly spread over the sorted list.
    awk -v n="$PER_CATEGORY" -v t="$total" \
      'BEGIN { for (i = 0; i < n; i++) pick[int(i * t / n) + 1] = 1 } pick[NR]' \
      "$WORK/$category.ok" >"$WORK/$category.pick"
    while IFS= read -r rel; do
      level="${rel#./}"
      level="${level%%/*}"
      name="$(basename "$rel" .ogg)"
      # Leading and trailing silence (below 1% of full scale for 20 ms) is cut.
      sox -R -D -V1 "$sounds/$rel" -r 16000 -c 1 -b 16 "$NEW/$category/$level-$name.wav" \
        silence 1 0.02 1% reverse silence 1 0.02 1% reverse
    done <"$WORK/$category.pick"
    echo "fillets_voices: $category: $(wc -l <"$WORK/$category.pick") of $total clips ($MIN_S-$MAX_S s; $(wc -l <"$WORK/$category.all") in the package)"
  done
done

echo "$STAMP" >"$NEW/.done"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
mv "$NEW" "$OUT"
echo "fillets_voices: wrote $OUT"
