#!/usr/bin/env bash
# Install the system packages Kapsule needs, only where they are missing.
#   scripts/install-system-deps.sh            runtime: ffmpeg/ffprobe, python3-venv, caption fonts
#   scripts/install-system-deps.sh --test     plus what the test suite uses
#   scripts/install-system-deps.sh --bench    plus what benchmarks/analysis.py uses (fluidsynth, three GM soundfonts)
# Uses apt-get (after one `apt-get update`) on Debian/Ubuntu; elsewhere it says what to install.
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1
want_bench=0
[[ "${1:-}" == "--bench" ]] && want_bench=1

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# Burned lyric captions (libass): DejaVu Sans for Latin, Greek, Cyrillic, Hebrew and Arabic;
# Droid Sans Fallback for Chinese, Japanese and Korean (7 MB, against 90 MB for fonts-noto-cjk).
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ]] || missing+=(fonts-dejavu-core)
[[ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ]] || missing+=(fonts-droid-fallback)
if (( want_test )); then
  : # later issues add test-only packages here (chromium, fluidsynth, soundfonts)
  # The studio's end-to-end test drives Debian's Chromium with Playwright (no browser download).
  [[ -x /usr/bin/chromium ]] || missing+=(chromium fonts-dejavu-core)
  # The lyrics aligner's tests sing with espeak-ng (a sung song with known word times).
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
  # The studio's accessibility checks run axe-core (npm, pinned below) in that Chromium.
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
if (( want_bench )); then  # benchmarks/analysis.py renders public-domain scores to audio
  command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth)
  [[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]] || missing+=(fluid-soundfont-gm)
  # benchmarks/corpus.py renders every piece through one of three GM soundfonts
  [[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]] || missing+=(timgm6mb-soundfont)
  [[ -f /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ]] || missing+=(musescore-general-soundfont-small)
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)  # benchmarks/lyrics.py sings with it
fi

# axe-core for the studio's browser tests, pinned, into the checkout's .cache/ (tests/support/browser.py
# loads it from there); after the system packages, which may be what brings npm.
AXE_VERSION=4.14.1
AXE_DIR="$(cd "$(dirname "$0")/.." && pwd)/.cache/axe"
install_axe() {
  (( want_test )) || return 0
  [[ -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]] \
    && grep -q "\"version\": \"$AXE_VERSION\"" "$AXE_DIR/node_modules/axe-core/package.json" && return 0
  echo "kapsule: installing axe-core $AXE_VERSION into $AXE_DIR"
  npm install --silent --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" >/dev/null
}

# de-duplicate
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')
if (( ${#missing[@]} == 0 )); then
  install_axe
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "kapsule: missing system packages: ${missing[*]}" >&2
  echo "kapsule: this machine has no apt-get; install them with your package manager" >&2
  echo "         (macOS: brew install ffmpeg; Fedora: dnf install ffmpeg-free python3)" >&2
  exit 1
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "kapsule: need root to apt-get install ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
fi
echo "kapsule: installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_axe
