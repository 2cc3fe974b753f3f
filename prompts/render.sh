#!/usr/bin/env bash
# Renders the prompt texts into the WAV files the engine plays.
#
# Usage:
#   prompts/render.sh                      re-render every text under prompts/<lang>/,
#                                          sub-folders included
#   prompts/render.sh prompts/en/main_menu.txt en/say/21.txt ...
#                                          re-render only the given texts (paths
#                                          from the current folder or from prompts/)
#
# Each prompts/<lang>/<name>.txt holds the exact words of prompts/<lang>/<name>.wav;
# <name> may contain sub-folders (prompts/en/say/21.txt is the prompt "say/21").
# Edit the .txt, run this script, listen to the result, commit both files.
# The .wav files are committed, so only whoever changes a text needs the speech
# engine: `apt-get install espeak-ng sox`.
#
# Output: 8 kHz, mono, 16-bit PCM WAV (what a phone line carries), 150 ms of
# silence before the speech and 250 ms after it, peak normalised to -3 dBFS.
# The fragments under prompts/<lang>/say/ (numbers, dates, ... joined at play time
# into one phrase) get only 20 ms at each end, so that "twenty" "one" flows.
# Every line of a text is spoken as one segment; segments are joined by a short
# pause, so put each sentence group on its own line where a breath sounds natural.
set -euo pipefail

# Prompt language (the folder name) -> espeak-ng voice.
declare -A VOICE=(
  [en]=en-us
  [de]=de
)

# Lines spoken in another language than their folder's, as "LANG/NAME:LINE" -> voice.
# The language choice and the welcome are played before the caller has chosen a
# language, so each of them says one line in English and one in German.
declare -A LINE_VOICE=(
  [en/welcome:2]=de
  [de/welcome:1]=en-us
  [en/choose_language:2]=de
  [de/choose_language:1]=en-us
)

# Words the speech engine gets wrong, as "LANG/NAME:LINE" -> what it is given instead
# (espeak-ng phonemes in [[...]]); the .txt keeps the words as written.
declare -A SPOKEN=(
  [de/say/dollar:1]="[[d'Olar]]"
)

SPEED=150        # words per minute
PAUSE=0.35       # seconds between the lines of a text
LEAD=0.15        # seconds of silence before the speech
TRAIL=0.25       # seconds of silence after the speech
PEAK=-3          # dBFS
FRAGMENT_PAD=0.02 # seconds of silence at each end of a say/ fragment

for tool in espeak-ng sox; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "render.sh: '$tool' is not installed (apt-get install espeak-ng sox)" >&2
    exit 1
  fi
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# espeak-ng writes 22050 Hz mono; every segment stays at that rate until the end.
sox -n -r 22050 -c 1 -b 16 "$work/pause.wav" trim 0 "$PAUSE"

render() {
  local txt="$1"
  local lang name key voice n segments line abs rel lead trail
  # The language is the folder right under prompts/; the name is the rest of the path.
  abs="$(cd "$(dirname "$txt")" && pwd)/$(basename "$txt")"
  if [[ "$abs" == "$here"/*/* ]]; then
    rel="${abs#"$here"/}"
    lang="${rel%%/*}"
    name="${rel#*/}"
    name="${name%.txt}"
  else
    lang="$(basename "$(dirname "$txt")")"
    name="$(basename "$txt" .txt)"
  fi
  key="$lang/$name"
  if [[ "$name" == say/* ]]; then
    lead="$FRAGMENT_PAD"
    trail="$FRAGMENT_PAD"
  else
    lead="$LEAD"
    trail="$TRAIL"
  fi
  if [[ -z "${VOICE[$lang]+set}" ]]; then
    echo "render.sh: no voice for language '$lang' ($txt); add it to VOICE" >&2
    return 1
  fi

  segments=()
  n=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    n=$((n + 1))
    line="${line%$'\r'}"
    [[ -z "${line//[[:space:]]/}" ]] && continue
    voice="${LINE_VOICE[$key:$n]:-${VOICE[$lang]}}"
    printf '%s\n' "${SPOKEN[$key:$n]:-$line}" >"$work/line.txt"
    espeak-ng -v "$voice" -s "$SPEED" -f "$work/line.txt" -w "$work/raw.wav"
    # Trim the engine's own silence at both ends so the padding below is exact.
    sox "$work/raw.wav" "$work/seg$n.wav" \
      silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse
    if ((${#segments[@]} > 0)); then
      segments+=("$work/pause.wav")
    fi
    segments+=("$work/seg$n.wav")
  done <"$txt"

  if ((${#segments[@]} == 0)); then
    echo "render.sh: $txt is empty" >&2
    return 1
  fi

  local out="${txt%.txt}.wav"
  sox "${segments[@]}" -c 1 -b 16 -e signed-integer "$work/out.wav" \
    rate 8000 norm "$PEAK" pad "$lead" "$trail"
  mv "$work/out.wav" "$out"
  rm -f "$work"/seg*.wav
  printf '%-40s %6.2fs\n' "${out#"$here"/}" "$(soxi -D "$out")"
}

files=()
if (($# > 0)); then
  for arg in "$@"; do
    if [[ -f "$arg" || "$arg" = /* ]]; then files+=("$arg"); else files+=("$here/$arg"); fi
  done
else
  while IFS= read -r -d '' txt; do
    files+=("$txt")
  done < <(find "$here" -mindepth 2 -name '*.txt' -print0 | sort -z)
fi

for txt in "${files[@]}"; do
  if [[ ! -f "$txt" ]]; then
    echo "render.sh: no such text: $txt" >&2
    exit 1
  fi
done
# Called outside any `||` so that `set -e` stops at the first failing tool.
for txt in "${files[@]}"; do
  render "$txt"
done
