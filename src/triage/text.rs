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
        for piece in normalized.split(is_clause_punctuation) {
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
                            clauses.push(Clause {
                                chars: if start == 0 {
                                    part.chars().filter(|c| !c.is_whitespace()).collect()
                                } else {
                                    Vec::new()
                                },
                                words: words[start..i].to_vec(),
                            });
                        }
                        start = i + 1;
                    }
                }
            }
        }
        clauses.retain(|c| !c.chars.is_empty() || !c.words.is_empty());
        Self {
            normalized,
            clauses,
        }
    }
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
    Chinese(Vec<(String, bool)>),
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
                let segment: String = segment.chars().filter(|c| !c.is_whitespace()).collect();
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
        text.clauses
            .iter()
            .any(|clause| self.found_in_clause(clause))
    }

    fn found_in_clause(&self, clause: &Clause) -> bool {
        match self {
            Pattern::Words(parts) => (0..clause.words.len()).any(|start| {
                match match_words(parts, &clause.words, start) {
                    Some(end) => !negated_words(&clause.words, start, end),
                    None => false,
                }
            }),
            Pattern::Chinese(parts) => (0..clause.chars.len()).any(|start| {
                match match_chinese(parts, &clause.chars, start) {
                    Some(end) => !negated_chinese(&clause.chars, start, end),
                    None => false,
                }
            }),
        }
    }
}

impl WordPattern {
    fn matches(&self, word: &str) -> bool {
        match self {
            WordPattern::Prefix(prefix) => word.starts_with(prefix.as_str()),
            WordPattern::Exact(expected) => word == expected || is_typo_of(word, expected),
        }
    }
}

/// Patients type fast: one swapped pair of letters in words of four letters or more ("pian"), and
/// one letter wrong, missing or extra in words of seven or more ("unconcious", "breating"). Shorter
/// words must match exactly, or "breast" would read as "breath".
fn is_typo_of(word: &str, expected: &str) -> bool {
    let (w, e): (Vec<char>, Vec<char>) = (word.chars().collect(), expected.chars().collect());
    if e.len() >= 4 && w.len() == e.len() {
        let differing: Vec<usize> = (0..e.len()).filter(|&i| w[i] != e[i]).collect();
        if let [i, j] = differing[..]
            && j == i + 1
            && w[i] == e[j]
            && w[j] == e[i]
        {
            return true;
        }
    }
    e.len() >= 7 && w.len() + 1 >= e.len() && strsim::osa_distance(word, expected) <= 1
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

fn negated_words(words: &[String], start: usize, end: usize) -> bool {
    let before = &words[start.saturating_sub(NEGATION_WINDOW)..start];
    let after = &words[end..(end + NEGATION_WINDOW).min(words.len())];
    before.iter().any(|w| NEGATION_BEFORE.contains(&w.as_str()))
        || after.iter().any(|w| NEGATION_AFTER.contains(&w.as_str()))
        || after
            .windows(2)
            .any(|pair| pair[0] == "went" && pair[1] == "away")
}

fn match_chinese(parts: &[(String, bool)], chars: &[char], start: usize) -> Option<usize> {
    let mut at = start;
    for (index, (segment, gap)) in parts.iter().enumerate() {
        let segment: Vec<char> = segment.chars().collect();
        let latest = if index == 0 {
            start
        } else if *gap {
            at + CHINESE_GAP
        } else {
            at
        };
        let found = (at..=latest).find(|&i| chars[i.min(chars.len())..].starts_with(&segment))?;
        if index > 0 && contains_chinese_negation(&chars[at..found]) {
            return None;
        }
        at = found + segment.len();
    }
    Some(at)
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

fn negated_chinese(chars: &[char], start: usize, end: usize) -> bool {
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
    fn full_width_and_odd_unicode_are_normalised() {
        assert!(found("chest pain", "ＣＨＥＳＴ　ＰＡＩＮ"));
        assert!(found("cant breathe", "I can’t breathe"));
        assert!(!Text::new("").clauses.iter().any(|c| !c.words.is_empty()));
    }
}
