#!/usr/bin/env bash
# Regenerate tests/samples/VCTK-mini: a tiny synthetic stand-in for VCTK-Corpus-0.92.
#
# Same on-disk layout as the real corpus, so recipes/VCTK/vctk_prepare.py and the
# integration tests run on it unchanged:
#   speaker-info.txt
#   txt/pNNN/pNNN_MMM.txt
#   wav48_silence_trimmed/pNNN/pNNN_MMM_mic1.flac   (48 kHz, mono, 16-bit FLAC)
# Only the mic1 copy is generated (keeps the tree small).
#
# Speech is synthesised with espeak-ng: 14 "speakers" (a different voice, variant,
# pitch and rate each) x 6 sentences of 2-4 s, resampled to 48 kHz with sox, silence
# trimmed lightly. Deterministic: no random choices, sox dither off.
#
# Needs: espeak-ng, sox (apt-get install -y espeak-ng sox).
# Usage: tools/make_vctk_mini.sh [output_folder]   (default: tests/samples/VCTK-mini)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/tests/samples/VCTK-mini}"

for tool in espeak-ng sox soxi; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' not found; install it with: apt-get install -y espeak-ng sox" >&2
        exit 1
    fi
done

# Sentences (VCTK-like reading prompts); each speaker reads 6 of them, rotating.
SENTENCES=(
    "Ask her to bring these things with her from the store."
    "Six spoons of fresh snow peas for her brother."
    "We also need a small plastic snake and a big toy frog."
    "She can scoop these things into three red bags."
    "A rainbow splits white light into many colours."
    "Sunlight on raindrops acts like a prism."
    "Please call Stella and ask her to meet us at the station."
    "The weather was cold, but the children played outside all day."
    "He kept the old letters in a box under his bed."
    "There is a quiet little village beyond the green hills."
    "They walked along the river until the sun went down."
    "My sister bought a new coat for the winter holidays."
)
UTTS_PER_SPEAKER=6

# id | age | gender | accent | region | espeak voice | pitch | rate (words/min)
SPEAKERS=(
    "p225|23|F|English|Southern England|en-gb+f1|62|177"
    "p226|22|M|English|Surrey|en-gb+m1|40|172"
    "p227|38|M|English|Cumbria|en-gb-x-gbclan+m3|35|162"
    "p228|22|F|English|Southern England|en-gb-x-rp+f2|70|182"
    "p229|23|F|English|Southern England|en-gb+f3|58|167"
    "p230|22|F|English|Stockton-on-tees|en-gb-x-gbcwmd+f4|66|172"
    "p231|23|F|English|Southern England|en-gb+f5|54|187"
    "p232|23|M|English|Southern England|en-gb+m2|45|177"
    "p233|23|F|English|Staffordshire|en-gb-x-gbcwmd+f2|60|162"
    "p234|22|F|Scottish|West Dumfries|en-gb-scotland+f1|64|172"
    "p236|23|F|English|Manchester|en-gb-x-gbclan+f3|68|182"
    "p237|22|M|Scottish|Fife|en-gb-scotland+m4|38|167"
    "p238|22|F|NorthernIrish|Belfast|en-us+f4|56|177"
    "p239|22|F|English|SW England|en-029+f5|52|172"
)

rm -rf "$OUT"
mkdir -p "$OUT/wav48_silence_trimmed" "$OUT/txt"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

{
    printf 'ID  AGE  GENDER  ACCENTS  REGION  COMMENTS \n'
    for spk in "${SPEAKERS[@]}"; do
        IFS='|' read -r id age gender accent region _ _ _ <<<"$spk"
        printf '%s  %s  %s    %s  %s  (synthetic, espeak-ng)\n' \
            "$id" "$age" "$gender" "$accent" "$region"
    done
} >"$OUT/speaker-info.txt"

s_index=0
for spk in "${SPEAKERS[@]}"; do
    IFS='|' read -r id _ _ _ _ voice pitch rate <<<"$spk"
    mkdir -p "$OUT/wav48_silence_trimmed/$id" "$OUT/txt/$id"
    for ((u = 1; u <= UTTS_PER_SPEAKER; u++)); do
        text="${SENTENCES[$(((s_index + u - 1) % ${#SENTENCES[@]}))]}"
        utt="$(printf '%s_%03d' "$id" "$u")"
        printf '%s\n' "$text" >"$OUT/txt/$id/$utt.txt"
        espeak-ng -v "$voice" -p "$pitch" -s "$rate" -w "$TMP/raw.wav" "$text"
        # Trim leading/trailing silence (lightly: keep 50 ms of it), resample to 48 kHz,
        # peak at -1 dBFS (no clipping), 16-bit FLAC. -D: no dither, so reruns give identical files.
        sox -D "$TMP/raw.wav" --comment "" -r 48000 -b 16 -c 1 \
            "$OUT/wav48_silence_trimmed/$id/${utt}_mic1.flac" \
            silence 1 0.02 0.3% reverse silence 1 0.02 0.3% reverse \
            pad 0.05 0.05 gain -n -1 rate -v 48000
    done
    s_index=$((s_index + 1))
done

# Sanity check: every clip 2-4 s.
bad=0
while IFS= read -r f; do
    d="$(soxi -D "$f")"
    if awk -v d="$d" 'BEGIN { exit !(d < 2.0 || d > 4.0) }'; then
        echo "warning: $f lasts $d s (want 2-4 s)" >&2
        bad=1
    fi
done < <(find "$OUT/wav48_silence_trimmed" -name '*.flac' | sort)

echo "wrote $(find "$OUT" -name '*.flac' | wc -l) clips, $(du -sh "$OUT" | cut -f1) in $OUT"
exit "$bad"
