//! The recordings behind spoken values: every fragment `say` can ask for exists in the
//! shipped prompts with its transcript, in the phone format, without sentence padding,
//! and the transcripts of whole values read as the language's own phrase.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hotline::flow::model::SayKind;
use hotline::flow::say::{SUPPORTED_LANGUAGES, SayOptions, fragments, say, say_with};
use hotline::media::prompt::PromptLibrary;

fn prompts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
}

fn library() -> &'static PromptLibrary {
    static LIB: OnceLock<PromptLibrary> = OnceLock::new();
    LIB.get_or_init(|| {
        let (lib, errors) = PromptLibrary::load_dir(&prompts_dir(), "en");
        assert!(errors.is_empty(), "{errors:?}");
        lib
    })
}

#[test]
fn every_fragment_is_recorded_with_a_transcript() {
    let lib = library();
    for lang in SUPPORTED_LANGUAGES {
        let names = fragments(lang);
        assert!(names.len() > 150, "{lang}: only {} fragments", names.len());
        for name in &names {
            let prompt = lib
                .get_exact(lang, name)
                .unwrap_or_else(|| panic!("missing prompts/{lang}/{name}.wav"));
            let transcript = prompt.transcript().unwrap_or_default();
            assert!(
                !transcript.is_empty(),
                "prompts/{lang}/{name}.txt is missing or empty"
            );
            assert!(
                !transcript.contains('\n'),
                "prompts/{lang}/{name}.txt has more than one line"
            );
        }
    }
}

/// A recording left behind after a fragment was renamed or dropped would never play.
#[test]
fn no_stray_recordings_under_say() {
    let lib = library();
    for lang in SUPPORTED_LANGUAGES {
        let listed: BTreeSet<String> = fragments(lang).into_iter().collect();
        for name in lib.names(lang).filter(|n| n.starts_with("say/")) {
            assert!(
                listed.contains(name),
                "prompts/{lang}/{name}.wav is not used"
            );
        }
        let dir = prompts_dir().join(lang).join("say");
        for entry in std::fs::read_dir(&dir).expect("say folder") {
            let path = entry.expect("entry").path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("");
            assert!(
                matches!(ext, "wav" | "txt") && listed.contains(&format!("say/{stem}")),
                "{} is not a fragment",
                path.display()
            );
        }
    }
}

/// 8 kHz mono 16-bit PCM, normalised, short, and with little silence at either end so
/// that fragments join into one phrase.
#[test]
fn fragments_are_short_phone_audio_without_padding() {
    let lib = library();
    for lang in SUPPORTED_LANGUAGES {
        for name in fragments(lang) {
            let path = prompts_dir().join(lang).join(format!("{name}.wav"));
            let reader = hound::WavReader::open(&path).expect("readable WAV");
            let spec = reader.spec();
            assert_eq!(
                (spec.channels, spec.sample_rate, spec.bits_per_sample),
                (1, 8000, 16),
                "{}",
                path.display()
            );
            assert_eq!(spec.sample_format, hound::SampleFormat::Int);

            let prompt = lib.get_exact(lang, &name).expect("loaded");
            let samples = prompt.samples();
            let seconds = samples.len() as f64 / 8000.0;
            assert!(
                (0.15..2.0).contains(&seconds),
                "{}: {seconds:.2} s",
                path.display()
            );
            let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            // -3 dBFS is 23197; allow for the rounding of the normaliser.
            assert!(
                (20_000..=24_000).contains(&peak),
                "{}: peak {peak}",
                path.display()
            );
            // Sound (above -50 dBFS, so that a soft "th" or "f" counts) starts and ends
            // within 50 ms of the file's edges; sentence prompts have 150 and 250 ms.
            let loud = |s: &i16| s.unsigned_abs() > 100;
            let first = samples.iter().position(loud).unwrap_or(usize::MAX);
            let last = samples.iter().rposition(loud).unwrap_or(0);
            assert!(first <= 400, "{}: {first} samples of lead", path.display());
            assert!(
                samples.len() - 1 - last <= 400,
                "{}: {} samples of trail",
                path.display(),
                samples.len() - 1 - last
            );
        }
    }
}

/// The transcripts of the fragments for `value`, joined by spaces.
fn spoken(kind: SayKind, value: &str, lang: &str) -> String {
    spoken_with(kind, value, lang, SayOptions::default())
}

fn spoken_with(kind: SayKind, value: &str, lang: &str, options: SayOptions) -> String {
    let lib = library();
    say_with(kind, value, lang, options)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|name| {
            lib.get_exact(lang, name)
                .and_then(|p| p.transcript())
                .unwrap_or_else(|| panic!("no transcript for {lang}/{name}"))
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn english_phrases() {
    use SayKind::*;
    let en = |kind, value| spoken(kind, value, "en");
    assert_eq!(en(Digits, "*12#"), "star one two hash");
    assert_eq!(en(Number, "21"), "twenty-one");
    assert_eq!(en(Number, "105"), "one hundred and five");
    assert_eq!(
        en(Number, "1234567"),
        "one million two hundred and thirty-four thousand five hundred and sixty-seven"
    );
    assert_eq!(en(Number, "-3.5"), "minus three point five");
    assert_eq!(en(Currency, "12.50"), "twelve euros and fifty cents");
    assert_eq!(en(Currency, "$1.01"), "one dollar and one cent");
    assert_eq!(en(Currency, "£0.50"), "fifty pence");
    assert_eq!(
        en(Date, "2026-11-25"),
        "Wednesday the twenty-fifth of November"
    );
    assert_eq!(en(Date, "2026-01-01"), "Thursday the first of January");
    assert_eq!(
        en(Date, "2026-03-22T09:00:00Z"),
        "Sunday the twenty-second of March"
    );
    assert_eq!(
        spoken_with(Date, "2026-11-25", "en", SayOptions { with_year: true }),
        "Wednesday the twenty-fifth of November twenty twenty-six"
    );
    assert_eq!(en(Time, "14:05"), "two oh five p.m.");
    assert_eq!(en(Time, "00:00"), "midnight");
    assert_eq!(en(Time, "2026-11-25T10:30:00+01:00"), "ten thirty a.m.");
}

#[test]
fn german_phrases() {
    use SayKind::*;
    let de = |kind, value| spoken(kind, value, "de");
    assert_eq!(de(Digits, "*12#"), "Stern eins zwei Raute");
    assert_eq!(de(Number, "1"), "eins");
    assert_eq!(de(Number, "21"), "einundzwanzig");
    assert_eq!(de(Number, "105"), "hundert fünf");
    assert_eq!(de(Number, "1001"), "tausend eins");
    assert_eq!(de(Number, "1000000"), "eine Million");
    assert_eq!(
        de(Number, "2101000"),
        "zwei Millionen ein hundert ein tausend"
    );
    assert_eq!(de(Number, "3.5"), "drei Komma fünf");
    assert_eq!(de(Currency, "12.50"), "zwölf Euro fünfzig");
    assert_eq!(de(Currency, "1 EUR"), "ein Euro");
    assert_eq!(de(Currency, "0.01"), "ein Cent");
    assert_eq!(
        de(Date, "2026-11-25"),
        "Mittwoch den fünfundzwanzigsten November"
    );
    assert_eq!(de(Date, "2026-03-03"), "Dienstag den dritten März");
    assert_eq!(
        spoken_with(Date, "2026-11-25", "de", SayOptions { with_year: true }),
        "Mittwoch den fünfundzwanzigsten November zwei tausend sechsundzwanzig"
    );
    assert_eq!(de(Time, "14:05"), "vierzehn Uhr fünf");
    assert_eq!(de(Time, "01:00"), "ein Uhr");
}

#[test]
fn unsupported_language_has_no_fragments() {
    assert!(fragments("fr").is_empty());
    assert!(say(SayKind::Number, "1", "fr").is_err());
}
