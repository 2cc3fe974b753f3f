//! Spoken values: turns a `say` item (digits, a number, an amount of money, a date, a time)
//! into the recorded fragments that speak it, in English or German.
//!
//! Owns the grammar of each language and the list of fragments it may ask for. Fragment
//! names are relative to the language's prompt folder and all start with `say/`
//! (`prompts/en/say/21.wav` says "twenty-one"). It must not load or play audio, read the
//! clock or fall back to another language: the caller picks the prompts and decides what
//! to do with an [`SayError::UnsupportedLanguage`] (for instance say the value in the
//! flow's default language instead).
//!
//! # Fragments
//!
//! Both languages record the numbers 0 to 99 as whole words (`say/0` .. `say/99`): German
//! "einundzwanzig" or English "twenty-one" then sound like one word instead of three
//! joined ones. Larger numbers put scale words after them (`say/hundred`, `say/tausend`).
//! German compounds are joined from the same pieces: "zweihundertein Euro" is `say/2
//! say/hundert say/ein say/euro`, with `say/ein` and `say/eine` for the forms of "eins"
//! before a noun. The day ordinals of dates are `say/ord_1` .. `say/ord_31` (German in
//! the form after "den": "ersten"). Other fragments are named by their word in the
//! language, in lower-case ASCII (`say/november`, `say/maerz`, `say/euros`). [`fragments`]
//! lists them all. A language is matched on its primary subtag (`de-AT` is German); the
//! names are the same for every region, so a regional prompt folder may leave `say/` to
//! the main language's folder.
//!
//! # What is said
//!
//! | kind | value | English | German |
//! | --- | --- | --- | --- |
//! | digits | `0-9 * # +`; spaces, `-`, `.`, `/` and brackets are skipped | "one two star" | "eins zwei Stern" |
//! | number | `[-+]123[.45]` | "one hundred and twenty-three point four five" | "hundertdreiundzwanzig Komma vier fünf" |
//! | currency | `12.50`, `12.50 EUR`, `EUR 12.50`, `€12.50`, `$3`, `£3`, `CHF 5` | "twelve euros and fifty cents" | "zwölf Euro fünfzig" |
//! | date | `2026-11-25`, or a date-time | "Wednesday, the twenty-fifth of November" | "Mittwoch, den fünfundzwanzigsten November" |
//! | time | `14:05`, `14:05:30`, or a date-time | "two oh five p.m." | "vierzehn Uhr fünf" |
//!
//! English follows British usage: "and" after "hundred" and before a last group under a
//! hundred ("one thousand and five"), "the twenty-fifth of November". Times are 12-hour
//! with "a.m."/"p.m.", "noon" and "midnight". German times are 24-hour. Numbers go up to
//! [`MAX_INTEGER`]; decimals are read digit by digit after the point ("three point one
//! four"). A currency without a code is euros. Dates say the weekday, the day and the
//! month; the year only with [`SayOptions::with_year`]. A date-time is spoken as written:
//! its offset is not converted to any other time zone.

use thiserror::Error;

use super::model::SayKind;

/// Largest whole number that can be said (just under a trillion).
pub const MAX_INTEGER: u64 = 999_999_999_999;
/// Longest value accepted, in characters: longer values are refused rather than spoken
/// for minutes.
pub const MAX_VALUE_CHARS: usize = 256;
/// How much of a bad value an error quotes.
const QUOTED_CHARS: usize = 64;

/// Languages with fragments and grammar, as their folder names.
pub const SUPPORTED_LANGUAGES: &[&str] = &["en", "de"];

/// How a value is said beyond its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SayOptions {
    /// Dates: say the year after the month ("... of November twenty twenty-six").
    pub with_year: bool,
}

/// Why a value cannot be said.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SayError {
    /// No grammar and fragments for this language; the caller may fall back to another.
    #[error("cannot say values in language '{language}': supported languages are en and de")]
    UnsupportedLanguage { language: String },
    /// The value does not have the form its kind needs. `value` is quoted as given
    /// (cut after 64 characters).
    #[error("cannot say '{value}' as {}: expected {expected}", kind.as_str())]
    BadValue {
        kind: SayKind,
        value: String,
        expected: String,
    },
}

/// The fragments that say `value` as `kind` in `language`, in playing order.
///
/// `language` is matched on its primary subtag, ignoring case (`en-GB` and `EN` are
/// English, `de-AT` is German). Equivalent to [`say_with`] with default options.
pub fn say(kind: SayKind, value: &str, language: &str) -> Result<Vec<String>, SayError> {
    say_with(kind, value, language, SayOptions::default())
}

/// [`say`] with options.
pub fn say_with(
    kind: SayKind,
    value: &str,
    language: &str,
    options: SayOptions,
) -> Result<Vec<String>, SayError> {
    let lang = Lang::parse(language).ok_or_else(|| SayError::UnsupportedLanguage {
        language: language.to_owned(),
    })?;
    let bad = |expected: &str| SayError::BadValue {
        kind,
        value: quote(value),
        expected: expected.to_owned(),
    };
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(bad(&format!("at most {MAX_VALUE_CHARS} characters")));
    }
    let text = value.trim();
    let mut out = Out::default();
    match kind {
        SayKind::Digits => say_digits(&mut out, lang, text).map_err(bad)?,
        SayKind::Number => {
            let n = parse_decimal(text).map_err(|e| bad(&e))?;
            lang.number(&mut out, &n);
        }
        SayKind::Currency => {
            let money = parse_money(text).map_err(|e| bad(&e))?;
            lang.money(&mut out, &money);
        }
        SayKind::Date => {
            let date = parse_date_value(text).map_err(|e| bad(&e))?;
            lang.date(&mut out, &date, options);
        }
        SayKind::Time => {
            let time = parse_time_value(text).map_err(|e| bad(&e))?;
            lang.time(&mut out, &time);
        }
    }
    Ok(out.0)
}

/// Every fragment [`say`] can return for `language`, each once; empty for a language
/// without support. Checks use it to find missing recordings.
pub fn fragments(language: &str) -> Vec<String> {
    let Some(lang) = Lang::parse(language) else {
        return Vec::new();
    };
    let numbers = (0..100).map(|n| format!("say/{n}"));
    let ordinals = (1..=31).map(|n| format!("say/ord_{n}"));
    let words = lang.words().into_iter().map(|w| format!("say/{w}"));
    numbers.chain(ordinals).chain(words).collect()
}

/// True when [`say`] knows `language`.
pub fn is_supported(language: &str) -> bool {
    Lang::parse(language).is_some()
}

fn quote(value: &str) -> String {
    if value.chars().count() <= QUOTED_CHARS {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(QUOTED_CHARS).collect();
        cut.push('…');
        cut
    }
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Out(Vec<String>);

impl Out {
    fn word(&mut self, word: &str) {
        self.0.push(format!("say/{word}"));
    }

    /// A number from 0 to 99, recorded as one word.
    fn small(&mut self, n: u64) {
        debug_assert!(n < 100);
        self.0.push(format!("say/{n}"));
    }

    fn ordinal(&mut self, day: u32) {
        self.0.push(format!("say/ord_{day}"));
    }
}

// ---------------------------------------------------------------------------------------
// Parsed values
// ---------------------------------------------------------------------------------------

/// A number as written: sign, whole part, and the digits after the point (kept as
/// written, "3.50" says "five zero").
#[derive(Debug, PartialEq)]
struct Decimal {
    negative: bool,
    whole: u64,
    fraction: Vec<u8>,
}

impl Decimal {
    fn is_zero(&self) -> bool {
        self.whole == 0 && self.fraction.iter().all(|&d| d == 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Currency {
    Eur,
    Usd,
    Gbp,
    Chf,
}

const CURRENCY_FORMS: &str = "an amount like 12.50, 12.50 EUR, EUR 12.50, €12.50, $3 or £3 \
     (currencies EUR, USD, GBP, CHF; at most two decimals)";

#[derive(Debug, PartialEq)]
struct Money {
    negative: bool,
    currency: Currency,
    major: u64,
    /// Cents, pence: 0 to 99.
    minor: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Date {
    year: u32,
    month: u32,
    day: u32,
}

impl Date {
    /// 0 is Monday.
    fn weekday(self) -> usize {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        // 1970-01-01 was a Thursday (3).
        usize::try_from((days + 3).rem_euclid(7)).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Time {
    hour: u32,
    minute: u32,
}

// ---------------------------------------------------------------------------------------
// Languages
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    De,
}

const EN_WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const EN_MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const EN_OTHER: &[&str] = &[
    "hundred",
    "thousand",
    "million",
    "billion",
    "and",
    "minus",
    "point",
    "star",
    "hash",
    "plus",
    "the",
    "of",
    "oh",
    "am",
    "pm",
    "noon",
    "midnight",
    "euro",
    "euros",
    "cent",
    "cents",
    "dollar",
    "dollars",
    "pound",
    "pounds",
    "penny",
    "pence",
    "swiss_franc",
    "swiss_francs",
    "centime",
    "centimes",
];

const DE_WEEKDAYS: [&str; 7] = [
    "montag",
    "dienstag",
    "mittwoch",
    "donnerstag",
    "freitag",
    "samstag",
    "sonntag",
];
const DE_MONTHS: [&str; 12] = [
    "januar",
    "februar",
    "maerz",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "dezember",
];
const DE_OTHER: &[&str] = &[
    "hundert",
    "tausend",
    "million",
    "millionen",
    "milliarde",
    "milliarden",
    "ein",
    "eine",
    "minus",
    "komma",
    "stern",
    "raute",
    "plus",
    "den",
    "uhr",
    "euro",
    "cent",
    "dollar",
    "pfund",
    "penny",
    "pence",
    "franken",
    "rappen",
];

/// How a German number ending in a lone 1 says it: "eins" alone, "ein Euro", "eine
/// Million".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum One {
    Eins,
    Ein,
    Eine,
}

impl Lang {
    fn parse(language: &str) -> Option<Lang> {
        let primary = language.split(['-', '_']).next().unwrap_or_default().trim();
        if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else if primary.eq_ignore_ascii_case("de") {
            Some(Lang::De)
        } else {
            None
        }
    }

    /// The named fragments (not numbers or ordinals).
    fn words(self) -> Vec<&'static str> {
        let (weekdays, months, other) = match self {
            Lang::En => (&EN_WEEKDAYS, &EN_MONTHS, EN_OTHER),
            Lang::De => (&DE_WEEKDAYS, &DE_MONTHS, DE_OTHER),
        };
        weekdays
            .iter()
            .chain(months.iter())
            .chain(other.iter())
            .copied()
            .collect()
    }

    fn digit_word(self, c: char) -> &'static str {
        match (self, c) {
            (Lang::En, '*') => "star",
            (Lang::En, '#') => "hash",
            (Lang::De, '*') => "stern",
            (Lang::De, '#') => "raute",
            _ => "plus",
        }
    }

    fn number(self, out: &mut Out, n: &Decimal) {
        if n.negative && !n.is_zero() {
            out.word("minus");
        }
        match self {
            Lang::En => en_integer(out, n.whole),
            Lang::De => de_integer(out, n.whole, One::Eins),
        }
        if !n.fraction.is_empty() {
            out.word(match self {
                Lang::En => "point",
                Lang::De => "komma",
            });
            for &d in &n.fraction {
                out.small(u64::from(d));
            }
        }
    }

    fn money(self, out: &mut Out, m: &Money) {
        if m.negative && (m.major > 0 || m.minor > 0) {
            out.word("minus");
        }
        match self {
            Lang::En => en_money(out, m),
            Lang::De => de_money(out, m),
        }
    }

    fn date(self, out: &mut Out, d: &Date, options: SayOptions) {
        let weekday = d.weekday();
        let month = usize::try_from(d.month.saturating_sub(1)).unwrap_or(0);
        match self {
            Lang::En => {
                out.word(EN_WEEKDAYS.get(weekday).copied().unwrap_or("monday"));
                out.word("the");
                out.ordinal(d.day);
                out.word("of");
                out.word(EN_MONTHS.get(month).copied().unwrap_or("january"));
                if options.with_year {
                    en_year(out, d.year);
                }
            }
            Lang::De => {
                out.word(DE_WEEKDAYS.get(weekday).copied().unwrap_or("montag"));
                out.word("den");
                out.ordinal(d.day);
                out.word(DE_MONTHS.get(month).copied().unwrap_or("januar"));
                if options.with_year {
                    de_year(out, d.year);
                }
            }
        }
    }

    fn time(self, out: &mut Out, t: &Time) {
        let (hour, minute) = (u64::from(t.hour), u64::from(t.minute));
        match self {
            Lang::En => match (hour, minute) {
                (0, 0) => out.word("midnight"),
                (12, 0) => out.word("noon"),
                _ => {
                    out.small(if hour % 12 == 0 { 12 } else { hour % 12 });
                    if minute > 0 {
                        if minute < 10 {
                            out.word("oh");
                        }
                        out.small(minute);
                    }
                    out.word(if hour < 12 { "am" } else { "pm" });
                }
            },
            Lang::De => {
                // "ein Uhr", never "eins Uhr"; minutes at the end say "eins".
                if hour == 1 {
                    out.word("ein");
                } else {
                    out.small(hour);
                }
                out.word("uhr");
                if minute > 0 {
                    out.small(minute);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// English
// ---------------------------------------------------------------------------------------

const EN_SCALES: [(u64, &str); 3] = [
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1_000, "thousand"),
];

fn en_integer(out: &mut Out, n: u64) {
    if n == 0 {
        out.small(0);
        return;
    }
    let mut rest = n;
    let mut said = false;
    for (scale, word) in EN_SCALES {
        let group = rest / scale;
        if group > 0 {
            en_hundreds(out, group);
            out.word(word);
            said = true;
        }
        rest %= scale;
    }
    if rest > 0 {
        // British: "one thousand and five", but "one thousand two hundred and five".
        if said && rest < 100 {
            out.word("and");
        }
        en_hundreds(out, rest);
    }
}

/// 1 to 999.
fn en_hundreds(out: &mut Out, n: u64) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        out.small(hundreds);
        out.word("hundred");
        if rest > 0 {
            out.word("and");
        }
    }
    if rest > 0 {
        out.small(rest);
    }
}

/// "nineteen ninety-nine", "nineteen oh five", "nineteen hundred", "two thousand and six",
/// "twenty twenty-six".
fn en_year(out: &mut Out, year: u32) {
    let y = u64::from(year);
    let (high, low) = (y / 100, y % 100);
    if y < 1000 || y.is_multiple_of(1000) || (2000..2010).contains(&y) {
        en_integer(out, y);
    } else if low == 0 {
        out.small(high);
        out.word("hundred");
    } else {
        out.small(high);
        if low < 10 {
            out.word("oh");
        }
        out.small(low);
    }
}

fn en_money(out: &mut Out, m: &Money) {
    let (one, many, one_minor, many_minor) = match m.currency {
        Currency::Eur => ("euro", "euros", "cent", "cents"),
        Currency::Usd => ("dollar", "dollars", "cent", "cents"),
        Currency::Gbp => ("pound", "pounds", "penny", "pence"),
        Currency::Chf => ("swiss_franc", "swiss_francs", "centime", "centimes"),
    };
    if m.major > 0 || m.minor == 0 {
        en_integer(out, m.major);
        out.word(if m.major == 1 { one } else { many });
        if m.minor == 0 {
            return;
        }
        out.word("and");
    }
    en_integer(out, m.minor);
    out.word(if m.minor == 1 { one_minor } else { many_minor });
}

// ---------------------------------------------------------------------------------------
// German
// ---------------------------------------------------------------------------------------

const DE_BIG_SCALES: [(u64, &str, &str); 2] = [
    (1_000_000_000, "milliarde", "milliarden"),
    (1_000_000, "million", "millionen"),
];

/// `one` is the form of a final lone 1 ("hunderteins", "hundertein Euro").
fn de_integer(out: &mut Out, n: u64, one: One) {
    if n == 0 {
        out.small(0);
        return;
    }
    let mut rest = n;
    // Nothing said yet: a leading 100 or 1000 is "hundert", "tausend"; later ones
    // "einhundert", "eintausend" ("tausendeinhundert").
    let mut leading = true;
    for (scale, singular, plural) in DE_BIG_SCALES {
        let group = rest / scale;
        if group == 1 {
            out.word("eine");
            out.word(singular);
            leading = false;
        } else if group > 1 {
            de_hundreds(out, group, One::Eine, leading);
            out.word(plural);
            leading = false;
        }
        rest %= scale;
    }
    let thousands = rest / 1000;
    if thousands == 1 {
        if !leading {
            out.word("ein");
        }
        out.word("tausend");
        leading = false;
    } else if thousands > 1 {
        de_hundreds(out, thousands, One::Ein, leading);
        out.word("tausend");
        leading = false;
    }
    rest %= 1000;
    if rest > 0 {
        de_hundreds(out, rest, one, leading);
    }
}

/// 1 to 999.
fn de_hundreds(out: &mut Out, n: u64, one: One, leading: bool) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds == 1 {
        if !leading {
            out.word("ein");
        }
        out.word("hundert");
    } else if hundreds > 1 {
        out.small(hundreds);
        out.word("hundert");
    }
    match (rest, one) {
        (0, _) => {}
        (1, One::Eins) => out.small(1),
        (1, One::Ein) => out.word("ein"),
        (1, One::Eine) => out.word("eine"),
        _ => out.small(rest),
    }
}

/// "neunzehnhundertneunundneunzig", "zweitausendsechsundzwanzig".
fn de_year(out: &mut Out, year: u32) {
    let y = u64::from(year);
    if (1100..2000).contains(&y) {
        out.small(y / 100);
        out.word("hundert");
        if y % 100 > 0 {
            out.small(y % 100);
        }
    } else {
        de_integer(out, y, One::Eins);
    }
}

fn de_money(out: &mut Out, m: &Money) {
    let (unit, minor_one, minor_many) = match m.currency {
        Currency::Eur => ("euro", "cent", "cent"),
        Currency::Usd => ("dollar", "cent", "cent"),
        Currency::Gbp => ("pfund", "penny", "pence"),
        Currency::Chf => ("franken", "rappen", "rappen"),
    };
    if m.major > 0 || m.minor == 0 {
        // "ein Euro", "zwölf Euro fünfzig", "ein Euro eins".
        de_integer(out, m.major, One::Ein);
        out.word(unit);
        if m.minor > 0 {
            de_integer(out, m.minor, One::Eins);
        }
    } else {
        de_integer(out, m.minor, One::Ein);
        out.word(if m.minor == 1 { minor_one } else { minor_many });
    }
}

// ---------------------------------------------------------------------------------------
// Digits
// ---------------------------------------------------------------------------------------

const DIGITS_FORMS: &str = "digits 0-9, * # or + (spaces, - . / and brackets are skipped)";

fn say_digits(out: &mut Out, lang: Lang, text: &str) -> Result<(), &'static str> {
    let start = out.0.len();
    for c in text.chars() {
        match c {
            '0'..='9' => out.small(u64::from(c) - u64::from('0')),
            '*' | '#' | '+' => out.word(lang.digit_word(c)),
            ' ' | '\t' | '-' | '.' | '/' | '(' | ')' => {}
            _ => return Err(DIGITS_FORMS),
        }
    }
    if out.0.len() == start {
        return Err(DIGITS_FORMS);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

const NUMBER_FORMS: &str = "a number like 42, -7 or 3.5 (a point before decimals)";

fn too_large() -> String {
    format!("a number of at most {MAX_INTEGER}")
}

/// `[-+]digits[.digits]`.
fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let (sign, unsigned) = split_sign(text);
    let negative = sign == Some(true);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let whole = parse_whole(whole, NUMBER_FORMS)?;
    let fraction = match fraction {
        None => Vec::new(),
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.bytes().map(|b| b - b'0').collect()
        }
        Some(_) => return Err(NUMBER_FORMS.to_owned()),
    };
    Ok(Decimal {
        negative,
        whole,
        fraction,
    })
}

/// The sign at the start, if any (`Some(true)` for minus), and the rest.
fn split_sign(text: &str) -> (Option<bool>, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        (Some(true), rest)
    } else if let Some(rest) = text.strip_prefix('+') {
        (Some(false), rest)
    } else {
        (None, text)
    }
}

/// ASCII digits up to [`MAX_INTEGER`]; leading zeros are fine.
fn parse_whole(digits: &str, forms: &str) -> Result<u64, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(forms.to_owned());
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 12 {
        return Err(too_large());
    }
    let n: u64 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| forms.to_owned())?
    };
    if n > MAX_INTEGER {
        return Err(too_large());
    }
    Ok(n)
}

fn currency_symbol(c: char) -> Option<Currency> {
    match c {
        '€' => Some(Currency::Eur),
        '$' => Some(Currency::Usd),
        '£' => Some(Currency::Gbp),
        _ => None,
    }
}

fn currency_code(code: &str) -> Option<Currency> {
    [
        ("EUR", Currency::Eur),
        ("USD", Currency::Usd),
        ("GBP", Currency::Gbp),
        ("CHF", Currency::Chf),
    ]
    .into_iter()
    .find(|(c, _)| c.eq_ignore_ascii_case(code))
    .map(|(_, cur)| cur)
}

/// Splits a currency marker (symbol or three-letter code) off the start of `s`.
fn strip_currency_prefix(s: &str) -> Result<Option<(Currency, &str)>, String> {
    if let Some(c) = s.chars().next()
        && let Some(cur) = currency_symbol(c)
    {
        return Ok(s.strip_prefix(c).map(|rest| (cur, rest)));
    }
    let letters = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    if letters == 0 {
        return Ok(None);
    }
    let Some((code, rest)) = s.split_at_checked(letters) else {
        return Err(CURRENCY_FORMS.to_owned());
    };
    match currency_code(code) {
        Some(cur) => Ok(Some((cur, rest))),
        None => Err(CURRENCY_FORMS.to_owned()),
    }
}

/// Splits a currency marker (symbol or three-letter code) off the end of `s`.
fn strip_currency_suffix(s: &str) -> Result<Option<(Currency, &str)>, String> {
    if let Some(c) = s.chars().next_back()
        && let Some(cur) = currency_symbol(c)
    {
        return Ok(s.strip_suffix(c).map(|rest| (cur, rest)));
    }
    let letters = s.bytes().rev().take_while(u8::is_ascii_alphabetic).count();
    if letters == 0 {
        return Ok(None);
    }
    let Some((rest, code)) = s.split_at_checked(s.len().saturating_sub(letters)) else {
        return Err(CURRENCY_FORMS.to_owned());
    };
    match currency_code(code) {
        Some(cur) => Ok(Some((cur, rest))),
        None => Err(CURRENCY_FORMS.to_owned()),
    }
}

/// `[-+][marker][-+]amount[marker]`, with at most one marker and one sign; spaces around
/// the marker are fine.
fn parse_money(text: &str) -> Result<Money, String> {
    let forms = || CURRENCY_FORMS.to_owned();
    let (sign, s) = split_sign(text);
    let mut negative = sign == Some(true);
    let mut currency = None;
    let mut s = s.trim();
    if let Some((cur, rest)) = strip_currency_prefix(s)? {
        currency = Some(cur);
        // "EUR -5", "€-5".
        let (second_sign, rest) = split_sign(rest.trim_start());
        if let Some(neg) = second_sign {
            if sign.is_some() {
                return Err(forms());
            }
            negative = neg;
        }
        s = rest;
    }
    if let Some((cur, rest)) = strip_currency_suffix(s)? {
        if currency.is_some() {
            return Err(forms());
        }
        currency = Some(cur);
        s = rest.trim_end();
    }
    let (whole, minor) = match s.split_once('.') {
        None => (s, 0),
        Some((w, f)) => {
            let minor = match f.as_bytes() {
                [d] if d.is_ascii_digit() => u64::from(d - b'0') * 10,
                [d1, d2] if d1.is_ascii_digit() && d2.is_ascii_digit() => {
                    u64::from(d1 - b'0') * 10 + u64::from(d2 - b'0')
                }
                _ => return Err(forms()),
            };
            (w, minor)
        }
    };
    let major = parse_whole(whole, CURRENCY_FORMS)?;
    Ok(Money {
        negative,
        currency: currency.unwrap_or(Currency::Eur),
        major,
        minor,
    })
}

const DATE_FORMS: &str = "a date like 2026-11-25 or a date-time like 2026-11-25T10:00:00+01:00";
const TIME_FORMS: &str =
    "a time like 14:05 or 14:05:30, or a date-time like 2026-11-25T14:05:00+01:00";

/// `YYYY-MM-DD`, optionally followed by `T` or a space and a time, which is checked but
/// not said.
fn parse_date_value(text: &str) -> Result<Date, String> {
    let (date, rest) = split_date(text).ok_or_else(|| DATE_FORMS.to_owned())?;
    let date = check_date(date)?;
    if !rest.is_empty() {
        let time = rest
            .strip_prefix(['T', 't', ' '])
            .ok_or_else(|| DATE_FORMS.to_owned())?;
        parse_time(time).ok_or_else(|| DATE_FORMS.to_owned())?;
    }
    Ok(date)
}

/// A time, or a date-time whose time is said (its date must be valid too).
fn parse_time_value(text: &str) -> Result<Time, String> {
    if let Some((date, rest)) = split_date(text) {
        check_date(date)?;
        let time = rest
            .strip_prefix(['T', 't', ' '])
            .ok_or_else(|| TIME_FORMS.to_owned())?;
        return parse_time(time).ok_or_else(|| TIME_FORMS.to_owned());
    }
    parse_time(text).ok_or_else(|| TIME_FORMS.to_owned())
}

/// The `YYYY-MM-DD` at the start, as numbers, and what follows it.
fn split_date(text: &str) -> Option<((u32, u32, u32), &str)> {
    let b = text.as_bytes();
    let shape = b.len() >= 10
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b.get(i).is_some_and(u8::is_ascii_digit));
    if !shape {
        return None;
    }
    let year = digits_value(text.get(0..4)?)?;
    let month = digits_value(text.get(5..7)?)?;
    let day = digits_value(text.get(8..10)?)?;
    Some(((year, month, day), text.get(10..)?))
}

fn digits_value(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn check_date((year, month, day): (u32, u32, u32)) -> Result<Date, String> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    if year == 0 {
        return Err(format!("a year from 0001 to 9999 in {DATE_FORMS}"));
    }
    if !(1..=12).contains(&month) {
        return Err(format!("a month from 01 to 12 in {DATE_FORMS}"));
    }
    let last = days_in_month(year, month);
    if !(1..=last).contains(&day) {
        let name = MONTHS
            .get(usize::try_from(month - 1).unwrap_or(0))
            .copied()
            .unwrap_or("");
        return Err(format!(
            "a day from 01 to {last} ({name} {year} has {last} days)"
        ));
    }
    Ok(Date { year, month, day })
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    // Months counted from March, so that the leap day is the last day of the year.
    let m = i64::from((month + 9) % 12);
    let day_of_year = (153 * m + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `H:MM` or `HH:MM`, optional `:SS` with optional fraction, optional zone (`Z`, `+01:00`,
/// `+0100`, `+01`). Seconds and zone are checked and dropped.
fn parse_time(text: &str) -> Option<Time> {
    let colon = text.find(':')?;
    let (hour, rest) = (text.get(..colon)?, text.get(colon + 1..)?);
    if !(1..=2).contains(&hour.len()) {
        return None;
    }
    let hour = digits_value(hour)?;
    let minute = digits_value(rest.get(..2)?)?;
    let mut rest = rest.get(2..)?;
    if let Some(after) = rest.strip_prefix(':') {
        let second = digits_value(after.get(..2)?)?;
        if second > 60 {
            return None;
        }
        rest = after.get(2..)?;
        if let Some(after) = rest.strip_prefix(['.', ',']) {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            rest = after.get(n..)?;
        }
    }
    if hour > 23 || minute > 59 || !is_zone(rest) {
        return None;
    }
    Some(Time { hour, minute })
}

fn is_zone(s: &str) -> bool {
    if s.is_empty() || s == "Z" || s == "z" {
        return true;
    }
    let Some(offset) = s.strip_prefix(['+', '-']) else {
        return false;
    };
    // +01, +0100 or +01:00.
    let (hours, minutes) = match offset.as_bytes() {
        [_, _] => (offset, None),
        [_, _, _, _] => (offset.get(..2).unwrap_or(""), offset.get(2..)),
        [_, _, b':', _, _] => (offset.get(..2).unwrap_or(""), offset.get(3..)),
        _ => return false,
    };
    digits_value(hours).is_some_and(|h| h <= 23)
        && minutes.is_none_or(|m| digits_value(m).is_some_and(|m| m <= 59))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SayKind::{Currency as C, Date as D, Digits as G, Number as N, Time as T};
    use std::collections::BTreeSet;

    /// The fragments without their `say/` prefix, joined by spaces.
    fn s(kind: SayKind, value: &str, lang: &str) -> String {
        match say(kind, value, lang) {
            Ok(names) => names
                .iter()
                .map(|n| n.strip_prefix("say/").unwrap_or("NO-PREFIX"))
                .collect::<Vec<_>>()
                .join(" "),
            Err(e) => format!("error: {e}"),
        }
    }

    fn with_year(value: &str, lang: &str) -> String {
        let opts = SayOptions { with_year: true };
        say_with(D, value, lang, opts)
            .map(|v| v.join(" ").replace("say/", ""))
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    fn bad(kind: SayKind, value: &str) {
        for lang in SUPPORTED_LANGUAGES {
            match say(kind, value, lang) {
                Err(SayError::BadValue { kind: k, .. }) => assert_eq!(k, kind),
                other => panic!("{kind:?} {value:?} in {lang}: expected BadValue, got {other:?}"),
            }
        }
    }

    // ---- digits ----

    #[test]
    fn digits_en() {
        assert_eq!(s(G, "1234", "en"), "1 2 3 4");
        assert_eq!(s(G, "0", "en"), "0");
        assert_eq!(s(G, "*12#", "en"), "star 1 2 hash");
        assert_eq!(s(G, "+49 30 123-45", "en"), "plus 4 9 3 0 1 2 3 4 5");
        assert_eq!(s(G, "(030) 12/3.4", "en"), "0 3 0 1 2 3 4");
        assert_eq!(s(G, "  007 ", "en"), "0 0 7");
        assert_eq!(s(G, "9876543210", "en"), "9 8 7 6 5 4 3 2 1 0");
    }

    #[test]
    fn digits_de() {
        assert_eq!(s(G, "1234", "de"), "1 2 3 4");
        assert_eq!(s(G, "*1#", "de"), "stern 1 raute");
        assert_eq!(s(G, "+41", "de"), "plus 4 1");
        assert_eq!(s(G, "0", "de"), "0");
    }

    #[test]
    fn digits_bad() {
        bad(G, "");
        bad(G, "   ");
        bad(G, "12a4");
        bad(G, "- -");
        bad(G, "١٢");
        bad(G, &"1".repeat(MAX_VALUE_CHARS + 1));
        assert!(say(G, &"1".repeat(MAX_VALUE_CHARS), "en").is_ok());
    }

    // ---- numbers, English ----

    #[test]
    fn numbers_en_small() {
        assert_eq!(s(N, "0", "en"), "0");
        assert_eq!(s(N, "1", "en"), "1");
        for n in 11..=19 {
            assert_eq!(s(N, &n.to_string(), "en"), n.to_string());
        }
        assert_eq!(s(N, "21", "en"), "21");
        assert_eq!(s(N, "99", "en"), "99");
        assert_eq!(s(N, "007", "en"), "7");
        assert_eq!(s(N, "+5", "en"), "5");
        assert_eq!(s(N, " 42 ", "en"), "42");
    }

    #[test]
    fn numbers_en_hundreds_and_up() {
        assert_eq!(s(N, "100", "en"), "1 hundred");
        assert_eq!(s(N, "101", "en"), "1 hundred and 1");
        assert_eq!(s(N, "105", "en"), "1 hundred and 5");
        assert_eq!(s(N, "110", "en"), "1 hundred and 10");
        assert_eq!(s(N, "999", "en"), "9 hundred and 99");
        assert_eq!(s(N, "1000", "en"), "1 thousand");
        assert_eq!(s(N, "1001", "en"), "1 thousand and 1");
        assert_eq!(s(N, "1010", "en"), "1 thousand and 10");
        assert_eq!(s(N, "1100", "en"), "1 thousand 1 hundred");
        assert_eq!(s(N, "1234", "en"), "1 thousand 2 hundred and 34");
        assert_eq!(s(N, "21000", "en"), "21 thousand");
        assert_eq!(s(N, "100000", "en"), "1 hundred thousand");
        assert_eq!(s(N, "101001", "en"), "1 hundred and 1 thousand and 1");
        assert_eq!(s(N, "1000000", "en"), "1 million");
        assert_eq!(s(N, "1000005", "en"), "1 million and 5");
        assert_eq!(s(N, "2500000", "en"), "2 million 5 hundred thousand");
        assert_eq!(
            s(N, "999999999", "en"),
            "9 hundred and 99 million 9 hundred and 99 thousand 9 hundred and 99"
        );
        assert_eq!(s(N, "1000000000", "en"), "1 billion");
        assert_eq!(
            s(N, "999999999999", "en"),
            "9 hundred and 99 billion 9 hundred and 99 million 9 hundred and 99 thousand 9 hundred and 99"
        );
    }

    #[test]
    fn numbers_en_negative_and_decimal() {
        assert_eq!(s(N, "-7", "en"), "minus 7");
        assert_eq!(s(N, "-1000", "en"), "minus 1 thousand");
        assert_eq!(s(N, "-0", "en"), "0");
        assert_eq!(s(N, "3.5", "en"), "3 point 5");
        assert_eq!(s(N, "3.14", "en"), "3 point 1 4");
        assert_eq!(s(N, "0.5", "en"), "0 point 5");
        assert_eq!(s(N, "3.50", "en"), "3 point 5 0");
        assert_eq!(s(N, "-2.05", "en"), "minus 2 point 0 5");
        assert_eq!(s(N, "-0.0", "en"), "0 point 0");
        assert_eq!(s(N, "-0.1", "en"), "minus 0 point 1");
        assert_eq!(s(N, "121.0", "en"), "1 hundred and 21 point 0");
    }

    // ---- numbers, German ----

    #[test]
    fn numbers_de_small() {
        assert_eq!(s(N, "0", "de"), "0");
        assert_eq!(s(N, "1", "de"), "1");
        for n in 11..=19 {
            assert_eq!(s(N, &n.to_string(), "de"), n.to_string());
        }
        assert_eq!(s(N, "21", "de"), "21");
        assert_eq!(s(N, "99", "de"), "99");
    }

    #[test]
    fn numbers_de_hundreds_and_up() {
        assert_eq!(s(N, "100", "de"), "hundert");
        assert_eq!(s(N, "101", "de"), "hundert 1");
        assert_eq!(s(N, "105", "de"), "hundert 5");
        assert_eq!(s(N, "121", "de"), "hundert 21");
        assert_eq!(s(N, "200", "de"), "2 hundert");
        assert_eq!(s(N, "999", "de"), "9 hundert 99");
        assert_eq!(s(N, "1000", "de"), "tausend");
        assert_eq!(s(N, "1001", "de"), "tausend 1");
        assert_eq!(s(N, "1100", "de"), "tausend ein hundert");
        assert_eq!(s(N, "1234", "de"), "tausend 2 hundert 34");
        assert_eq!(s(N, "2001", "de"), "2 tausend 1");
        assert_eq!(s(N, "21000", "de"), "21 tausend");
        assert_eq!(s(N, "100000", "de"), "hundert tausend");
        assert_eq!(s(N, "101000", "de"), "hundert ein tausend");
        assert_eq!(s(N, "101101", "de"), "hundert ein tausend ein hundert 1");
        assert_eq!(s(N, "1000000", "de"), "eine million");
        assert_eq!(s(N, "1001000", "de"), "eine million ein tausend");
        assert_eq!(s(N, "1000001", "de"), "eine million 1");
        assert_eq!(s(N, "2000000", "de"), "2 millionen");
        assert_eq!(s(N, "21000000", "de"), "21 millionen");
        assert_eq!(s(N, "101000000", "de"), "hundert eine millionen");
        assert_eq!(
            s(N, "999999999", "de"),
            "9 hundert 99 millionen 9 hundert 99 tausend 9 hundert 99"
        );
        assert_eq!(s(N, "1000000000", "de"), "eine milliarde");
        assert_eq!(s(N, "3000000100", "de"), "3 milliarden ein hundert");
    }

    #[test]
    fn numbers_de_negative_and_decimal() {
        assert_eq!(s(N, "-7", "de"), "minus 7");
        assert_eq!(s(N, "-1", "de"), "minus 1");
        assert_eq!(s(N, "3.5", "de"), "3 komma 5");
        assert_eq!(s(N, "1.5", "de"), "1 komma 5");
        assert_eq!(s(N, "0.25", "de"), "0 komma 2 5");
        assert_eq!(s(N, "-101.01", "de"), "minus hundert 1 komma 0 1");
    }

    #[test]
    fn numbers_bad() {
        for v in [
            "", "-", "+", "abc", "1,000", "3,5", "1e5", "3.", ".5", "1.2.3", "--1", "- 1", "1 000",
            "0x10", "12a", "١٢",
        ] {
            bad(N, v);
        }
        bad(N, "1000000000000");
        bad(N, "99999999999999999999999999");
        assert_eq!(s(N, "000000000000000000042", "en"), "42");
        let e = say(N, "1e5", "en").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot say '1e5' as number: expected a number like 42, -7 or 3.5 (a point before decimals)"
        );
        let e = say(N, "1000000000000", "en").unwrap_err();
        assert!(e.to_string().contains("at most 999999999999"), "{e}");
    }

    // ---- currency ----

    #[test]
    fn currency_en() {
        assert_eq!(s(C, "12.50", "en"), "12 euros and 50 cents");
        assert_eq!(s(C, "12.50 EUR", "en"), "12 euros and 50 cents");
        assert_eq!(s(C, "EUR 12.50", "en"), "12 euros and 50 cents");
        assert_eq!(s(C, "€12.50", "en"), "12 euros and 50 cents");
        assert_eq!(s(C, "12.50€", "en"), "12 euros and 50 cents");
        assert_eq!(s(C, "1", "en"), "1 euro");
        assert_eq!(s(C, "1.01", "en"), "1 euro and 1 cent");
        assert_eq!(s(C, "0.50", "en"), "50 cents");
        assert_eq!(s(C, "0.01", "en"), "1 cent");
        assert_eq!(s(C, "0", "en"), "0 euros");
        assert_eq!(s(C, "12.5", "en"), "12 euros and 50 cents");
        assert_eq!(s(C, "12.05", "en"), "12 euros and 5 cents");
        assert_eq!(s(C, "$3", "en"), "3 dollars");
        assert_eq!(s(C, "$1.99", "en"), "1 dollar and 99 cents");
        assert_eq!(s(C, "3 usd", "en"), "3 dollars");
        assert_eq!(s(C, "£3", "en"), "3 pounds");
        assert_eq!(s(C, "GBP 1.01", "en"), "1 pound and 1 penny");
        assert_eq!(s(C, "£0.20", "en"), "20 pence");
        assert_eq!(s(C, "CHF 1.50", "en"), "1 swiss_franc and 50 centimes");
        assert_eq!(
            s(C, "1234.56 EUR", "en"),
            "1 thousand 2 hundred and 34 euros and 56 cents"
        );
        assert_eq!(s(C, "-5 EUR", "en"), "minus 5 euros");
        assert_eq!(s(C, "-€5", "en"), "minus 5 euros");
        assert_eq!(s(C, "€-5", "en"), "minus 5 euros");
        assert_eq!(s(C, "EUR -0.50", "en"), "minus 50 cents");
        assert_eq!(s(C, "-0.00", "en"), "0 euros");
        assert_eq!(s(C, "1000000 USD", "en"), "1 million dollars");
    }

    #[test]
    fn currency_de() {
        assert_eq!(s(C, "12.50", "de"), "12 euro 50");
        assert_eq!(s(C, "12.50 EUR", "de"), "12 euro 50");
        assert_eq!(s(C, "1", "de"), "ein euro");
        assert_eq!(s(C, "1.50", "de"), "ein euro 50");
        assert_eq!(s(C, "1.01", "de"), "ein euro 1");
        assert_eq!(s(C, "21", "de"), "21 euro");
        assert_eq!(s(C, "101", "de"), "hundert ein euro");
        assert_eq!(s(C, "1000", "de"), "tausend euro");
        assert_eq!(s(C, "1000000", "de"), "eine million euro");
        assert_eq!(s(C, "1000001", "de"), "eine million ein euro");
        assert_eq!(s(C, "0.50", "de"), "50 cent");
        assert_eq!(s(C, "0.01", "de"), "ein cent");
        assert_eq!(s(C, "0", "de"), "0 euro");
        assert_eq!(s(C, "$3", "de"), "3 dollar");
        assert_eq!(s(C, "$1", "de"), "ein dollar");
        assert_eq!(s(C, "£1.20", "de"), "ein pfund 20");
        assert_eq!(s(C, "£0.01", "de"), "ein penny");
        assert_eq!(s(C, "£0.02", "de"), "2 pence");
        assert_eq!(s(C, "CHF 5.05", "de"), "5 franken 5");
        assert_eq!(s(C, "0.10 CHF", "de"), "10 rappen");
        assert_eq!(s(C, "-12.50", "de"), "minus 12 euro 50");
    }

    #[test]
    fn currency_bad() {
        for v in [
            "",
            "EUR",
            "€",
            "12.505",
            "12.",
            "12,50",
            "JPY 5",
            "5 XYZ",
            "EUR 5 EUR",
            "€5€",
            "--5",
            "-€-5",
            "+€-5",
            "5 euros",
            "12.5a",
            "¥5",
            "1000000000000 EUR",
        ] {
            bad(C, v);
        }
        let e = say(C, "JPY 5", "de").unwrap_err().to_string();
        assert!(e.contains("EUR, USD, GBP, CHF"), "{e}");
    }

    // ---- dates ----

    #[test]
    fn dates_en() {
        assert_eq!(s(D, "2026-11-25", "en"), "wednesday the ord_25 of november");
        assert_eq!(
            s(D, "2026-11-25T10:00:00+01:00", "en"),
            "wednesday the ord_25 of november"
        );
        assert_eq!(
            s(D, "2026-11-25 23:59", "en"),
            "wednesday the ord_25 of november"
        );
        assert_eq!(s(D, "2024-02-29", "en"), "thursday the ord_29 of february");
        assert_eq!(s(D, "2000-01-01", "en"), "saturday the ord_1 of january");
        assert_eq!(s(D, "1970-01-01", "en"), "thursday the ord_1 of january");
        assert_eq!(s(D, "1969-12-31", "en"), "wednesday the ord_31 of december");
        assert_eq!(s(D, "2026-03-02", "en"), "monday the ord_2 of march");
        assert_eq!(s(D, "2026-05-03", "en"), "sunday the ord_3 of may");
        assert_eq!(s(D, "2026-06-11", "en"), "thursday the ord_11 of june");
        assert_eq!(s(D, "2026-07-12", "en"), "sunday the ord_12 of july");
        assert_eq!(s(D, "2026-08-13", "en"), "thursday the ord_13 of august");
        assert_eq!(s(D, "2026-09-21", "en"), "monday the ord_21 of september");
        assert_eq!(s(D, "2026-10-22", "en"), "thursday the ord_22 of october");
        assert_eq!(s(D, "2026-12-31", "en"), "thursday the ord_31 of december");
        assert_eq!(s(D, "2026-04-30", "en"), "thursday the ord_30 of april");
        assert_eq!(s(D, "2026-01-23", "en"), "friday the ord_23 of january");
        assert_eq!(s(D, "2026-02-24", "en"), "tuesday the ord_24 of february");
        assert_eq!(s(D, "1600-03-01", "en"), "wednesday the ord_1 of march");
        assert_eq!(s(D, "0001-01-01", "en"), "monday the ord_1 of january");
        assert_eq!(s(D, "9999-12-31", "en"), "friday the ord_31 of december");
    }

    /// The weekday formula against counting days one by one from a known Monday.
    #[test]
    fn weekdays_match_a_day_count() {
        let mut weekday = 0; // 1900-01-01 was a Monday.
        for year in 1900..2200 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    let date = Date { year, month, day };
                    assert_eq!(date.weekday(), weekday, "{date:?}");
                    weekday = (weekday + 1) % 7;
                }
            }
        }
    }

    #[test]
    fn dates_de() {
        assert_eq!(s(D, "2026-11-25", "de"), "mittwoch den ord_25 november");
        assert_eq!(s(D, "2026-03-01", "de"), "sonntag den ord_1 maerz");
        assert_eq!(s(D, "2026-05-02", "de"), "samstag den ord_2 mai");
        assert_eq!(s(D, "2026-12-24", "de"), "donnerstag den ord_24 dezember");
        assert_eq!(s(D, "2026-10-03T00:00Z", "de"), "samstag den ord_3 oktober");
        assert_eq!(s(D, "2026-06-16", "de"), "dienstag den ord_16 juni");
        assert_eq!(s(D, "2026-01-16", "de"), "freitag den ord_16 januar");
        assert_eq!(s(D, "2026-02-09", "de"), "montag den ord_9 februar");
    }

    #[test]
    fn dates_with_year() {
        assert_eq!(
            with_year("2026-11-25", "en"),
            "wednesday the ord_25 of november 20 26"
        );
        assert_eq!(
            with_year("2006-01-02", "en")
                .split_once(" of january ")
                .map(|x| x.1),
            Some("2 thousand and 6")
        );
        assert!(with_year("2000-01-01", "en").ends_with("january 2 thousand"));
        assert!(with_year("2010-01-01", "en").ends_with("january 20 10"));
        assert!(with_year("1999-01-01", "en").ends_with("january 19 99"));
        assert!(with_year("1905-01-01", "en").ends_with("january 19 oh 5"));
        assert!(with_year("1900-01-01", "en").ends_with("january 19 hundred"));
        assert!(with_year("0999-01-01", "en").ends_with("january 9 hundred and 99"));
        assert_eq!(
            with_year("2026-11-25", "de"),
            "mittwoch den ord_25 november 2 tausend 26"
        );
        assert!(with_year("1999-01-01", "de").ends_with("januar 19 hundert 99"));
        assert!(with_year("1901-01-01", "de").ends_with("januar 19 hundert 1"));
        assert!(with_year("1900-01-01", "de").ends_with("januar 19 hundert"));
        assert!(with_year("2001-01-01", "de").ends_with("januar 2 tausend 1"));
        assert!(with_year("1001-01-01", "de").ends_with("januar tausend 1"));
    }

    #[test]
    fn dates_bad() {
        for v in [
            "",
            "2026-13-01",
            "2026-00-10",
            "2026-02-29",
            "2026-04-31",
            "2026-11-00",
            "0000-01-01",
            "26-11-25",
            "2026/11/25",
            "2026-1-5",
            "25.11.2026",
            "2026-11-25X",
            "2026-11-25T",
            "2026-11-25T25:00",
            "2026-11-25T10:00+25:00",
            "2026-11-25Tfoo",
            "2026-11-２5",
            "tomorrow",
        ] {
            bad(D, v);
        }
        // Trimmed as a whole: a trailing space is not a time separator then.
        assert_eq!(
            s(D, "2026-11-25 ", "en"),
            "wednesday the ord_25 of november"
        );
        let e = say(D, "2026-02-29", "en").unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot say '2026-02-29' as date: expected a day from 01 to 28 (February 2026 has 28 days)"
        );
    }

    // ---- times ----

    #[test]
    fn times_en() {
        assert_eq!(s(T, "14:05", "en"), "2 oh 5 pm");
        assert_eq!(s(T, "14:00", "en"), "2 pm");
        assert_eq!(s(T, "14:30", "en"), "2 30 pm");
        assert_eq!(s(T, "9:15", "en"), "9 15 am");
        assert_eq!(s(T, "09:15", "en"), "9 15 am");
        assert_eq!(s(T, "00:00", "en"), "midnight");
        assert_eq!(s(T, "00:05", "en"), "12 oh 5 am");
        assert_eq!(s(T, "12:00", "en"), "noon");
        assert_eq!(s(T, "12:45", "en"), "12 45 pm");
        assert_eq!(s(T, "11:59", "en"), "11 59 am");
        assert_eq!(s(T, "23:59:59", "en"), "11 59 pm");
        assert_eq!(s(T, "13:01:00.250", "en"), "1 oh 1 pm");
        assert_eq!(s(T, "2026-11-25T10:00:00+01:00", "en"), "10 am");
        assert_eq!(s(T, "2026-11-25 18:20", "en"), "6 20 pm");
        assert_eq!(s(T, "2026-11-25T07:10:00Z", "en"), "7 10 am");
        assert_eq!(s(T, "07:10-0500", "en"), "7 10 am");
        assert_eq!(s(T, "07:10+05", "en"), "7 10 am");
    }

    #[test]
    fn times_de() {
        assert_eq!(s(T, "14:05", "de"), "14 uhr 5");
        assert_eq!(s(T, "14:00", "de"), "14 uhr");
        assert_eq!(s(T, "1:00", "de"), "ein uhr");
        assert_eq!(s(T, "01:01", "de"), "ein uhr 1");
        assert_eq!(s(T, "00:00", "de"), "0 uhr");
        assert_eq!(s(T, "00:30", "de"), "0 uhr 30");
        assert_eq!(s(T, "12:00", "de"), "12 uhr");
        assert_eq!(s(T, "21:21", "de"), "21 uhr 21");
        assert_eq!(s(T, "23:59", "de"), "23 uhr 59");
        assert_eq!(s(T, "2026-11-25T10:00:00+01:00", "de"), "10 uhr");
    }

    #[test]
    fn times_bad() {
        for v in [
            "",
            "24:00",
            "12:60",
            "12",
            "1205",
            "12:5",
            "123:00",
            "12:00:61",
            "12:00:5",
            "12:00pm",
            "12:00+1",
            "12:00+01:3",
            "12:00:00.",
            "2026-02-30T10:00",
            "2026-11-25",
            "2026-11-25T",
            "-1:00",
            "a:bc",
        ] {
            bad(T, v);
        }
    }

    // ---- languages ----

    #[test]
    fn languages() {
        assert_eq!(s(N, "21", "en-GB"), "21");
        assert_eq!(s(N, "21", "EN"), "21");
        assert_eq!(s(N, "21", "en_US"), "21");
        assert_eq!(s(N, "1", "de-AT"), "1");
        assert_eq!(s(T, "1:00", "DE-ch"), "ein uhr");
        for lang in ["fr", "", "e", "english", "pt-BR"] {
            assert_eq!(
                say(N, "1", lang),
                Err(SayError::UnsupportedLanguage {
                    language: lang.to_owned()
                })
            );
            assert!(fragments(lang).is_empty());
            assert!(!is_supported(lang));
        }
        let e = say(N, "1", "fr").unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot say values in language 'fr': supported languages are en and de"
        );
        // The language is checked before the value.
        assert!(matches!(
            say(N, "x", "fr"),
            Err(SayError::UnsupportedLanguage { .. })
        ));
    }

    #[test]
    fn long_bad_values_are_quoted_short() {
        let v = "x".repeat(200);
        let Err(SayError::BadValue { value, .. }) = say(N, &v, "en") else {
            panic!("expected BadValue");
        };
        assert_eq!(value.chars().count(), QUOTED_CHARS + 1);
    }

    // ---- the fragment list ----

    #[test]
    fn fragment_counts() {
        for lang in SUPPORTED_LANGUAGES {
            let list = fragments(lang);
            let set: BTreeSet<&String> = list.iter().collect();
            assert_eq!(set.len(), list.len(), "{lang}: duplicates");
            for name in &list {
                let rest = name
                    .strip_prefix("say/")
                    .unwrap_or_else(|| panic!("{name}"));
                assert!(
                    rest.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                    "{name}"
                );
            }
        }
        assert_eq!(fragments("en").len(), 100 + 31 + 7 + 12 + EN_OTHER.len());
        assert_eq!(fragments("de").len(), 100 + 31 + 7 + 12 + DE_OTHER.len());
    }

    /// Says a wide range of values and checks that every fragment returned is listed,
    /// and that every listed fragment is used by some value.
    #[test]
    fn fragments_are_exactly_what_is_said() {
        for lang in SUPPORTED_LANGUAGES {
            let listed: BTreeSet<String> = fragments(lang).into_iter().collect();
            let mut used = BTreeSet::new();
            let mut add = |kind: SayKind, value: &str, opts: SayOptions| {
                let names = say_with(kind, value, lang, opts)
                    .unwrap_or_else(|e| panic!("{lang} {value}: {e}"));
                for n in names {
                    assert!(listed.contains(&n), "{lang}: {value} gives unlisted {n}");
                    used.insert(n);
                }
            };
            let plain = SayOptions::default();
            let year = SayOptions { with_year: true };
            add(G, "0123456789*#+", plain);
            let mut n: u64 = 0;
            while n <= MAX_INTEGER {
                add(N, &n.to_string(), plain);
                add(N, &format!("-{n}.{}", n % 10), plain);
                n = n * 3 + 1;
            }
            for n in (0..3000).chain([1_000_001, 101_000_000, 1_001_000_000]) {
                add(N, &n.to_string(), plain);
            }
            for cur in ["EUR", "USD", "GBP", "CHF"] {
                for amount in ["0", "0.01", "0.5", "1", "1.01", "2.99", "-3"] {
                    add(C, &format!("{amount} {cur}"), plain);
                }
            }
            for month in 1..=12 {
                for day in 1..=28 {
                    add(D, &format!("2026-{month:02}-{day:02}"), year);
                }
            }
            for (day, month) in [(29, 1), (30, 1), (31, 1)] {
                add(D, &format!("1999-{month:02}-{day:02}"), year);
            }
            for y in [1000, 1905, 1900, 2000, 2006] {
                add(D, &format!("{y:04}-01-01"), year);
            }
            for h in 0..24 {
                for m in 0..60 {
                    add(T, &format!("{h:02}:{m:02}"), plain);
                }
            }
            let unused: Vec<&String> = listed.difference(&used).collect();
            assert!(unused.is_empty(), "{lang}: never said: {unused:?}");
        }
    }
}
