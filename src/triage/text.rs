//! Text as the triage rules see it: normalised, cut into clauses, and matched against phrase patterns
//! that tolerate typos and respect negation, in English and Chinese.
//!
//! Patterns are written in a small notation so that the rule tables stay readable:
//! - English: words separated by spaces; `word*` matches any word starting with `word`; `~` allows up
//!   to three other words in between ("pain ~ chest" matches "pain in my chest").
//! - Chinese (any pattern containing a Han character): matched on characters; `~` allows up to four
//!   other characters in between ("胸~疼" matches "胸口有点疼").

use unicode_normalization::UnicodeNormalization;

/// Words before a match that negate it ("no chest pain", "I don't have a fever").
const NEGATION_BEFORE: &[&str] = &[
    "no", "not", "dont", "doesnt", "didnt", "never", "without", "denies", "deny", "denied",
    "havent", "hasnt", "hadnt", "isnt", "arent", "wasnt", "werent", "nor", "none", "negative",
];
/// Words shortly after a match that say it is over ("the bleeding has stopped").
const NEGATION_AFTER: &[&str] = &["gone", "stopped", "resolved", "disappeared", "cleared"];
const ENGLISH_GAP: usize = 3;
const NEGATION_WINDOW: usize = 4;

const CHINESE_NEGATION_BEFORE: &[&str] = &["没有", "没", "无", "未", "否认", "不是", "不"];
/// "不" that does not negate what follows: 不停 (non-stop), 不断, 不止, 不舒服 (unwell), 不太 (barely),
/// 不过 (but).
const CHINESE_NOT_NEGATING: &[char] = &['停', '断', '止', '舒', '太', '了', '住', '行', '过'];
const CHINESE_NEGATION_AFTER: &[&str] = &["好了", "没了", "消失", "停了", "止住", "已经好"];
const CHINESE_GAP: usize = 4;

/// Conjunctions that start a new clause, so that a negation does not reach across them.
const CLAUSE_BREAK_WORDS: &[&str] = &["but", "however", "although", "though", "yet"];
const CHINESE_CLAUSE_BREAKS: &[&str] = &["但是", "可是", "然而", "但"];
/// "不过" (but) only where a clause starts: inside a clause it is part of a verb, as in 喘不过气
/// and 透不过气 (cannot get one's breath).
const CHINESE_CLAUSE_OPENERS: &[&str] = &["不过"];

/// A message prepared for matching.
#[derive(Debug, Clone)]
pub struct Text {
    /// The whole message, normalised (NFKC, lower case, apostrophes removed).
    pub normalized: String,
    pub clauses: Vec<Clause>,
}

#[derive(Debug, Clone)]
pub struct Clause {
    /// The clause's characters without spaces: what Chinese patterns match against.
    pub chars: Vec<char>,
    /// Whether `chars` holds any Han character (Chinese patterns need one).
    pub has_han: bool,
    /// Whether the clause is an item of a list a negation opened ("denies fever, cough"): all it
    /// names is denied.
    pub denied: bool,
    /// The clause's Latin-script words (letters and digits).
    pub words: Vec<String>,
}

impl Text {
    pub fn new(raw: &str) -> Self {
        let normalized: String = raw
            .nfkc()
            .flat_map(char::to_lowercase)
            .filter(|c| !matches!(c, '\'' | '’' | '‘' | '`' | 'ʼ'))
            .collect();
        let mut clauses = Vec::new();
        // "Denies chest pain, SOB or palpitations": a negation at the head of a list reaches the
        // list's later items, which punctuation puts in clauses of their own.
        let mut list_negation = false;
        for piece in normalized.split_inclusive(is_clause_punctuation) {
            let delimiter = piece.chars().last().filter(|&c| is_clause_punctuation(c));
            let piece = delimiter.map_or(piece, |d| &piece[..piece.len() - d.len_utf8()]);
            let raw_piece = piece;
            let inherits = list_negation && continues_negated_list(piece);
            let first_clause = clauses.len();
            let trimmed = piece.trim_start();
            let mut piece = CHINESE_CLAUSE_OPENERS
                .iter()
                .find_map(|opener| trimmed.strip_prefix(opener))
                .unwrap_or(piece)
                .to_owned();
            for word in CHINESE_CLAUSE_BREAKS {
                piece = piece.replace(word, "\u{1}");
            }
            for part in piece.split('\u{1}') {
                let mut words: Vec<String> = Vec::new();
                let mut current = String::new();
                for c in part.chars() {
                    if c.is_alphanumeric() && !is_han(c) {
                        current.push(c);
                    } else if !current.is_empty() {
                        words.push(std::mem::take(&mut current));
                    }
                }
                if !current.is_empty() {
                    words.push(current);
                }
                // Split on English conjunctions too, keeping the characters in step only roughly:
                // Chinese patterns do not care about Latin words.
                let mut start = 0;
                for i in 0..=words.len() {
                    if i == words.len() || CLAUSE_BREAK_WORDS.contains(&words[i].as_str()) {
                        if i > start || i == words.len() {
                            let chars: Vec<char> = if start == 0 {
                                part.chars().filter(|c| !c.is_whitespace()).collect()
                            } else {
                                Vec::new()
                            };
                            clauses.push(Clause {
                                has_han: chars.iter().any(|&c| is_han(c)),
                                denied: false,
                                chars,
                                words: words[start..i].to_vec(),
                            });
                        }
                        start = i + 1;
                    }
                }
            }
            if inherits {
                for clause in &mut clauses[first_clause..] {
                    clause.denied = true;
                }
            }
            let negates = inherits || opens_negated_list(raw_piece);
            list_negation = negates
                && match delimiter {
                    Some(',') => !raw_piece.chars().any(is_han),
                    Some('、') => true,
                    _ => false,
                };
        }
        clauses.retain(|c| !c.chars.is_empty() || !c.words.is_empty());
        Self {
            normalized,
            clauses,
        }
    }
}

/// Words that open a list of denied findings.
const LIST_NEGATIONS: &[&str] = &[
    "denies", "denied", "deny", "no", "nil", "without", "negative",
];
const CHINESE_LIST_NEGATIONS: &[&str] = &["否认", "无", "没有", "未"];
/// Words that make a clause a statement of its own rather than a list item.
const AFFIRMING_WORDS: &[&str] = &[
    "has",
    "have",
    "had",
    "is",
    "are",
    "was",
    "were",
    "reports",
    "complains",
    "presents",
    "now",
    "feels",
    "feel",
    "got",
    "gets",
    "there",
    "i",
    "she",
    "he",
    "they",
    "but",
    "though",
    "yet",
    "however",
    "although",
    "which",
    "with",
    "developed",
    "noticed",
    "started",
    "became",
];

fn opens_negated_list(piece: &str) -> bool {
    piece
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| LIST_NEGATIONS.contains(&w))
        || CHINESE_LIST_NEGATIONS.iter().any(|cue| piece.contains(cue))
}

fn continues_negated_list(piece: &str) -> bool {
    let words: Vec<&str> = piece
        .split(|c: char| !c.is_alphanumeric() || is_han(c))
        .filter(|w| !w.is_empty())
        .collect();
    let han = piece.chars().filter(|&c| is_han(c)).count();
    // A Chinese item joined by 及/和/或 ("言语不清及视物重影") is two items, so it may be longer.
    let joined = ["及", "和", "或"].iter().any(|c| piece.contains(c));
    words.len() <= 6
        && (han <= 8 || (joined && han <= 14))
        && !words.iter().any(|w| AFFIRMING_WORDS.contains(w))
        && !["有", "但", "还", "就是", "只是", "可是"]
            .iter()
            .any(|cue| piece.contains(cue) && !piece.contains("没有"))
}

fn is_clause_punctuation(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | ';'
            | ','
            | '\n'
            | '。'
            | '！'
            | '？'
            | '；'
            | '，'
            | '、'
            | '…'
            | ':'
            | '：'
    )
}

pub use crate::domain::is_han;

/// One compiled pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    Words(Vec<(WordPattern, bool)>),
    Chinese(Vec<(Vec<char>, bool)>),
}

#[derive(Debug, Clone)]
pub enum WordPattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    /// Compiles the notation described at the top of this module. The bool on each element says
    /// whether a gap is allowed before it.
    pub fn parse(source: &str) -> Self {
        if source.chars().any(is_han) {
            let mut parts = Vec::new();
            let mut gap = false;
            for segment in source.split('~') {
                let segment: Vec<char> = segment.chars().filter(|c| !c.is_whitespace()).collect();
                if !segment.is_empty() {
                    parts.push((segment, gap));
                }
                gap = true;
            }
            return Self::Chinese(parts);
        }
        let mut parts = Vec::new();
        let mut gap = false;
        for word in source.split_whitespace() {
            if word == "~" {
                gap = true;
                continue;
            }
            let pattern = match word.strip_suffix('*') {
                Some(prefix) => WordPattern::Prefix(prefix.to_owned()),
                None => WordPattern::Exact(word.to_owned()),
            };
            parts.push((pattern, gap));
            gap = false;
        }
        Self::Words(parts)
    }

    /// Whether the pattern occurs, not negated, in any clause of the text.
    pub fn found_in(&self, text: &Text) -> bool {
        self.mention_in(text) == Mention::Present
    }

    /// Whether the text affirms the pattern somewhere, only denies it, or does not mention it.
    pub fn mention_in(&self, text: &Text) -> Mention {
        strongest(
            text.clauses
                .iter()
                .map(|clause| self.mention_in_clause(clause)),
        )
    }

    fn mention_in_clause(&self, clause: &Clause) -> Mention {
        if clause.denied {
            let mut affirmed = clause.clone();
            affirmed.denied = false;
            return match self.mention_in_clause(&affirmed) {
                Mention::None => Mention::None,
                _ => Mention::Denied,
            };
        }
        let mut mention = Mention::None;
        match self {
            Pattern::Words(parts) => {
                for start in 0..clause.words.len() {
                    if let Some(end) = match_words(parts, &clause.words, start) {
                        if !negated_words(&clause.words, start, end) {
                            return Mention::Present;
                        }
                        mention = Mention::Denied;
                    }
                }
            }
            Pattern::Chinese(_) if !clause.has_han => {}
            Pattern::Chinese(parts) => {
                for start in 0..clause.chars.len() {
                    match match_chinese(parts, &clause.chars, start) {
                        Some(ChineseMatch::Plain(end)) => {
                            if !negated_chinese(&clause.chars, start, end) {
                                return Mention::Present;
                            }
                            mention = Mention::Denied;
                        }
                        Some(ChineseMatch::NegatedInside) => mention = Mention::Denied,
                        None => {}
                    }
                }
            }
        }
        mention
    }
}

/// How a text speaks of something. Ordered so that the strongest mention wins when a text speaks
/// of it more than once: "no fever yesterday, but now a fever" affirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mention {
    None,
    Denied,
    Present,
}

/// The strongest of some mentions, stopping at the first `Present` (nothing is stronger).
fn strongest(mentions: impl Iterator<Item = Mention>) -> Mention {
    let mut best = Mention::None;
    for mention in mentions {
        if mention == Mention::Present {
            return mention;
        }
        best = best.max(mention);
    }
    best
}

enum ChineseMatch {
    /// Matched; the end (exclusive) of the match.
    Plain(usize),
    /// The parts matched but a negation stood between them (胸口不疼).
    NegatedInside,
}

impl WordPattern {
    fn matches(&self, word: &str) -> bool {
        // No typo changes the first letter, so this one comparison rules out most words quickly.
        let first = |s: &str| s.as_bytes().first().copied();
        let expected = match self {
            WordPattern::Prefix(p) | WordPattern::Exact(p) => p,
        };
        if first(word) != first(expected) {
            return false;
        }
        match self {
            WordPattern::Prefix(prefix) => word.starts_with(prefix.as_str()),
            WordPattern::Exact(expected) => word == expected || is_typo_of(word, expected),
        }
    }
}

/// Patients type fast: one swapped pair of letters in words of four letters or more ("pian"), and
/// one letter wrong, missing or extra in words of seven or more ("unconcious", "breating"), but never
/// the first letter: "searing" is not "hearing", nor "wringing" "ringing" (which also lets matching
/// skip every word that starts with another letter). Shorter
/// words must match exactly, or "breast" would read as "breath".
fn is_typo_of(word: &str, expected: &str) -> bool {
    // Called for every word against every pattern word: no allocation on the common path.
    let (w, e) = (word.as_bytes(), expected.as_bytes());
    if e.len() < 4 || w.len() + 1 < e.len() || w.len() > e.len() + 1 {
        return false;
    }
    if !word.is_ascii() || !expected.is_ascii() {
        return typo_of_chars(word, expected);
    }
    if w.len() == e.len() {
        let mut differing = (0..e.len()).filter(|&i| w[i] != e[i]);
        let first = differing.next();
        let second = differing.next();
        let third = differing.next();
        match (first, second, third) {
            (Some(i), Some(j), None) if i > 0 && j == i + 1 && w[i] == e[j] && w[j] == e[i] => {
                return true;
            }
            (Some(i), None, None) => return e.len() >= 7 && i > 0,
            _ => return false,
        }
    }
    e.len() >= 7 && w[0] == e[0] && one_insertion_apart(w, e)
}

/// Whether the longer of two byte strings is the shorter with one byte inserted.
fn one_insertion_apart(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    short[prefix..] == long[prefix + 1..]
}

fn typo_of_chars(word: &str, expected: &str) -> bool {
    let (w, e): (Vec<char>, Vec<char>) = (word.chars().collect(), expected.chars().collect());
    if e.len() >= 4 && w.len() == e.len() {
        let differing: Vec<usize> = (0..e.len()).filter(|&i| w[i] != e[i]).collect();
        if let [i, j] = differing[..]
            && i > 0
            && j == i + 1
            && w[i] == e[j]
            && w[j] == e[i]
        {
            return true;
        }
    }
    e.len() >= 7
        && w.first() == e.first()
        && w.len() + 1 >= e.len()
        && w.len() <= e.len() + 1
        && strsim::osa_distance(word, expected) <= 1
}

/// The end (exclusive) of a match of `parts` starting exactly at `start`.
fn match_words(parts: &[(WordPattern, bool)], words: &[String], start: usize) -> Option<usize> {
    let ((first, _), rest) = parts.split_first()?;
    if !first.matches(words.get(start)?) {
        return None;
    }
    let mut at = start + 1;
    for (pattern, gap) in rest {
        let window = if *gap { ENGLISH_GAP + 1 } else { 1 };
        let found = (at..(at + window).min(words.len())).find(|&i| pattern.matches(&words[i]))?;
        at = found + 1;
    }
    Some(at)
}

/// Words a denial reaches the end of the clause through: "denies any thoughts of self-harm or
/// suicide", "not having any thoughts of hurting myself", "no intention of acting on it".
const DENIED_THOUGHTS: &[&str] = &[
    "thoughts",
    "thought",
    "ideation",
    "ideas",
    "intent",
    "intention",
    "intentions",
    "plans",
    "plan",
];

fn negated_words(words: &[String], start: usize, end: usize) -> bool {
    let before = &words[start.saturating_sub(NEGATION_WINDOW)..start];
    let after = &words[end..(end + NEGATION_WINDOW).min(words.len())];
    let denied_thoughts = words[..start].iter().enumerate().any(|(i, w)| {
        DENIED_THOUGHTS.contains(&w.as_str())
            && words[i.saturating_sub(3)..i]
                .iter()
                .any(|c| NEGATION_BEFORE.contains(&c.as_str()))
    });
    // "no pain in my arm or jaw": the last item of a denied list, reached through "or".
    let denied_list = start > 0
        && matches!(words[start - 1].as_str(), "or" | "nor")
        && words[start.saturating_sub(8)..start - 1].iter().any(|w| {
            matches!(
                w.as_str(),
                "no" | "not" | "denies" | "denied" | "without" | "never"
            )
        });
    denied_thoughts
        || denied_list
        || before.iter().any(|w| NEGATION_BEFORE.contains(&w.as_str()))
        || after.iter().any(|w| NEGATION_AFTER.contains(&w.as_str()))
        || after
            .windows(2)
            .any(|pair| pair[0] == "went" && pair[1] == "away")
}

fn match_chinese(
    parts: &[(Vec<char>, bool)],
    chars: &[char],
    start: usize,
) -> Option<ChineseMatch> {
    let mut at = start;
    let mut negated_inside = false;
    for (index, (segment, gap)) in parts.iter().enumerate() {
        let latest = if index == 0 {
            start
        } else if *gap {
            at + CHINESE_GAP
        } else {
            at
        };
        let found = (at..=latest).find(|&i| chars[i.min(chars.len())..].starts_with(segment))?;
        if index > 0 && contains_chinese_negation(&chars[at..found]) {
            negated_inside = true;
        }
        at = found + segment.len();
    }
    Some(if negated_inside {
        ChineseMatch::NegatedInside
    } else {
        ChineseMatch::Plain(at)
    })
}

fn contains_chinese_negation(span: &[char]) -> bool {
    span.iter().enumerate().any(|(i, &c)| {
        matches!(c, '没' | '无' | '未')
            || (c == '不'
                && !span
                    .get(i + 1)
                    .is_some_and(|n| CHINESE_NOT_NEGATING.contains(n)))
    })
}

/// A denial of having thought of something, right before it: 没有想过伤害自己.
const CHINESE_DENIED_THOUGHTS: &[&str] =
    &["没有想过", "没想过", "从没想过", "从来没想过", "不曾想过"];

fn negated_chinese(chars: &[char], start: usize, end: usize) -> bool {
    let wider: String = chars[start.saturating_sub(6)..start].iter().collect();
    if CHINESE_DENIED_THOUGHTS
        .iter()
        .any(|cue| wider.ends_with(cue))
    {
        return true;
    }
    let before: String = chars[start.saturating_sub(3)..start].iter().collect();
    let after: String = chars[end..(end + 4).min(chars.len())].iter().collect();
    let negated_before = CHINESE_NEGATION_BEFORE.iter().any(|cue| {
        before.match_indices(cue).any(|(i, _)| {
            if *cue != "不" {
                return true;
            }
            let next = before[i + cue.len()..]
                .chars()
                .next()
                .or_else(|| chars.get(start).copied());
            !next.is_some_and(|n| CHINESE_NOT_NEGATING.contains(&n))
        })
    });
    negated_before || CHINESE_NEGATION_AFTER.iter().any(|cue| after.contains(cue))
}

/// A set of patterns: found when any of them is.
#[derive(Debug, Clone)]
pub struct Phrases(Vec<Pattern>);

impl Phrases {
    pub fn new(sources: &[&str]) -> Self {
        Self(sources.iter().map(|s| Pattern::parse(s)).collect())
    }

    pub fn found_in(&self, text: &Text) -> bool {
        self.0.iter().any(|p| p.found_in(text))
    }

    /// The strongest mention of any of the patterns.
    pub fn mention_in(&self, text: &Text) -> Mention {
        strongest(self.0.iter().map(|p| p.mention_in(text)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern).found_in(&Text::new(text))
    }

    #[test]
    fn english_patterns_allow_gaps_prefixes_and_typos() {
        assert!(found("pain ~ chest", "I have a pain in my chest"));
        assert!(found("breath*", "I am breathing fast"));
        assert!(found("chest pain", "chest pian since this morning"));
        assert!(found("unconscious", "he is unconcious"));
        assert!(!found("breathe", "breast lump"));
        assert!(!found(
            "pain ~ chest",
            "pain in my left big toe and then my chest"
        ));
    }

    #[test]
    fn but_in_chinese_breaks_clauses_only_where_it_means_but() {
        let breathless = Phrases::new(&["透不过气", "喘不过气"]);
        assert!(breathless.found_in(&Text::new("我透不过气")));
        assert!(breathless.found_in(&Text::new("孩子喘不过气来")));
        let fever = Phrases::new(&["发烧"]);
        assert!(fever.found_in(&Text::new("没有咳嗽，不过发烧了")));
        assert!(!fever.found_in(&Text::new("不过没有发烧")));
    }

    #[test]
    fn a_chinese_negated_list_reaches_items_joined_by_and() {
        let slurred = Phrases::new(&["言语不清", "视物重影"]);
        assert!(!slurred.found_in(&Text::new("无肢体麻木无力、言语不清及视物重影。")));
        assert!(slurred.found_in(&Text::new("无头痛，突然言语不清及视物重影。")));
    }

    #[test]
    fn negation_is_scoped_to_its_clause() {
        assert!(!found("chest pain", "no chest pain"));
        assert!(!found("chest pain", "I don't have any chest pain"));
        assert!(found("chest pain", "no fever, but chest pain"));
        assert!(found("chest pain", "No fever. Chest pain since noon"));
        assert!(!found("bleeding", "the bleeding has stopped"));
        assert!(found("cant breathe", "I can't breathe"));
    }

    #[test]
    fn chinese_patterns_match_characters_with_negation() {
        assert!(found("胸~疼", "胸口疼得厉害"));
        assert!(!found("胸~疼", "胸口不疼"));
        assert!(!found("胸痛", "没有胸痛"));
        assert!(found("胸痛", "没有发烧，但是胸痛"));
        assert!(found("流血", "一直不停流血"));
        assert!(found("胸闷", "胸闷，不舒服"));
    }

    #[test]
    fn a_negation_reaches_the_items_of_its_list() {
        let mention = |p: &str, t: &str| Pattern::parse(p).mention_in(&Text::new(t));
        let note = "Denies saddle numbness, bladder change, fever, weight loss or cancer. Cough.";
        assert_eq!(mention("fever", note), Mention::Denied);
        assert_eq!(mention("cancer", note), Mention::Denied);
        assert_eq!(mention("cough", note), Mention::Present);
        assert_eq!(
            mention("cough", "no fever, she has a cough"),
            Mention::Present
        );
        assert_eq!(mention("cough", "no fever, but a cough"), Mention::Present);
        assert_eq!(mention("咳嗽", "否认发热、咳嗽"), Mention::Denied);
        assert_eq!(mention("咳嗽", "没有发烧，咳嗽三天了"), Mention::Present);
        assert_eq!(mention("咳嗽", "无发热，有咳嗽"), Mention::Present);
    }

    #[test]
    fn mentions_tell_denied_from_absent() {
        let mention = |p: &str, t: &str| Pattern::parse(p).mention_in(&Text::new(t));
        assert_eq!(mention("fever", "no fever"), Mention::Denied);
        assert_eq!(mention("fever", "a cough"), Mention::None);
        assert_eq!(
            mention("fever", "no fever yesterday, but a fever now"),
            Mention::Present
        );
        assert_eq!(mention("胸~疼", "胸口不疼"), Mention::Denied);
        assert_eq!(mention("发烧", "没有发烧"), Mention::Denied);
        assert_eq!(mention("发烧", "发烧了"), Mention::Present);
    }

    #[test]
    fn full_width_and_odd_unicode_are_normalised() {
        assert!(found("chest pain", "ＣＨＥＳＴ　ＰＡＩＮ"));
        assert!(found("cant breathe", "I can’t breathe"));
        assert!(!Text::new("").clauses.iter().any(|c| !c.words.is_empty()));
    }
}
