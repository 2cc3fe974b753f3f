#!/usr/bin/env bash
# Makes the sample hold music, prompts/en/hold_music.wav: a slow, quiet arpeggio of
# soft tones (C major, A minor, F major, G major), 24 seconds, looped by the queue while
# a caller waits. Other languages fall back to it. Needs sox.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
for chord in "C4 E4 G4 E4" "A3 C4 E4 C4" "F3 A3 C4 A3" "G3 B3 D4 B3"; do
  for rep in 1 2 3; do
    for note in $chord; do
      sox -n -r 8000 -c 1 -b 16 "$tmp/$(printf %03d $i).wav" \
        synth 0.5 pluck "$note" fade q 0.01 0.5 0.3 gain -14
      i=$((i + 1))
    done
  done
done
sox "$tmp"/*.wav -r 8000 -c 1 -b 16 en/hold_music.wav
echo "(hold music: a slow arpeggio, no words)" > en/hold_music.txt
soxi -D en/hold_music.wav
