//! Finding medicines in what people write: generic names, brands (medbot's own list, then the
//! drug dictionary's ~100,000 variants mapped to their generic name), classes ("blood thinners"),
//! in English and Chinese; and the statements that say the patient takes one or is allergic to one.

use super::knowledge::{Agent, MedicineKnowledge};
use crate::domain::is_han;
use crate::triage::DrugLexicon;

/// Lower case, every run of characters other than letters and digits turned into one space.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() && !is_han(c) {
            out.push(c);
        } else if !out.ends_with(' ') && !out.is_empty() {
            out.push(' ');
        }
    }
    out.trim_end().to_owned()
}

/// The longest English name medbot or the dictionary knows, in words.
const LONGEST_NAME: usize = 5;

/// A medicine named in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub agent: Agent,
    /// The words (or characters) as written, normalised.
    pub written: String,
}

/// Where names are looked up: medbot's own names first, then the drug dictionary's variants
/// ("coumadin" is warfarin) when one is at hand.
#[derive(Clone, Copy)]
pub struct NameLookup<'a> {
    pub knowledge: &'a MedicineKnowledge,
    pub lexicon: Option<&'a DrugLexicon>,
}

impl NameLookup<'_> {
    /// What a whole name (one the patient typed, or a command-line argument) names; the first
    /// component of a combination product.
    pub fn resolve(&self, name: &str) -> Option<Agent> {
        self.resolve_all(name).into_iter().next()
    }

    /// Every medicine a whole name stands for: one, or each component medbot knows of a
    /// combination brand ("Excedrin": aspirin, paracetamol).
    pub fn resolve_all(&self, name: &str) -> Vec<Agent> {
        let trimmed = name.trim();
        if trimmed.chars().any(is_han) {
            if let Some((_, agent)) = self.knowledge.chinese.iter().find(|(n, _)| n == trimmed) {
                return vec![*agent];
            }
            let found = self.find(trimmed);
            return if found.len() == 1 {
                vec![found[0].agent]
            } else {
                Vec::new()
            };
        }
        self.english(&normalise(trimmed))
    }

    /// What normalised words name: medbot's own names, else the generic names the dictionary
    /// gives for them, a combination's split into its components.
    fn english(&self, words: &str) -> Vec<Agent> {
        if let Some(agent) = self.knowledge.by_name.get(words) {
            return vec![*agent];
        }
        let Some(lexicon) = self.lexicon else {
            return Vec::new();
        };
        let mut agents = Vec::new();
        for generic in lexicon.canonical_names(words) {
            match self.knowledge.by_name.get(&normalise(generic)) {
                Some(agent) => agents.push(*agent),
                None => agents.extend(
                    generic
                        .split(['/', ',', ';', '+'])
                        .flat_map(|part| part.split(" and "))
                        .filter_map(|part| self.knowledge.by_name.get(&normalise(part)).copied()),
                ),
            }
        }
        agents.dedup();
        agents
    }

    /// Every medicine named in `text`, in order, each once.
    pub fn find(&self, text: &str) -> Vec<Mention> {
        let mut found: Vec<Mention> = Vec::new();
        for clause in clauses(text) {
            for mention in self.find_in_clause(&clause) {
                if !found.iter().any(|m| m.agent == mention.agent) {
                    found.push(mention);
                }
            }
        }
        found
    }

    /// The mentions in one clause: English names by words (longest first), then Chinese names by
    /// characters (longest first, never overlapping).
    fn find_in_clause(&self, clause: &Clause) -> Vec<Mention> {
        let mut out = Vec::new();
        let words = &clause.words;
        let mut i = 0;
        while i < words.len() {
            let longest = LONGEST_NAME.min(words.len() - i);
            let hit = (1..=longest).rev().find_map(|n| {
                let phrase = words[i..i + n].join(" ");
                let agents = self.english(&phrase);
                (!agents.is_empty()).then_some((n, phrase, agents))
            });
            match hit {
                Some((n, written, agents)) => {
                    for agent in agents {
                        out.push(Mention {
                            agent,
                            written: written.clone(),
                        });
                    }
                    i += n;
                }
                None => i += 1,
            }
        }
        if clause.chars.iter().any(|c| is_han(*c)) {
            let mut taken = vec![false; clause.chars.len()];
            for (name, agent) in &self.knowledge.chinese {
                let name: Vec<char> = name.chars().collect();
                let mut start = 0;
                while let Some(at) = find_chars(&clause.chars, &name, start) {
                    let end = at + name.len();
                    if !taken[at..end].iter().any(|t| *t) {
                        taken[at..end].iter_mut().for_each(|t| *t = true);
                        out.push(Mention {
                            agent: *agent,
                            written: name.iter().collect(),
                        });
                    }
                    start = end;
                }
            }
        }
        out
    }

    /// What the patient says they take or are allergic to: "I take warfarin", "I'm on
    /// metformin and ramipril", "allergic to penicillin", "我在吃华法林", "我对青霉素过敏". Questions
    /// ("can I take ibuprofen?") and negations ("I stopped taking", "not allergic") say nothing.
    pub fn statements(&self, text: &str) -> Vec<Statement> {
        let mut out: Vec<Statement> = Vec::new();
        // "I take warfarin, metformin and ramipril": a clause that only lists more names
        // continues the statement before it.
        let mut previous: Option<StatementKind> = None;
        for clause in clauses(text) {
            let mentions = self.find_in_clause(&clause);
            let kind = match clause.says() {
                Says::Negated => None,
                Says::Kind(kind) => Some(kind),
                Says::Nothing if !mentions.is_empty() && clause.only_lists(&mentions) => previous,
                Says::Nothing => None,
            };
            previous = kind;
            let Some(kind) = kind else { continue };
            for mention in mentions {
                if !out
                    .iter()
                    .any(|s| s.agent == mention.agent && s.kind == kind)
                {
                    out.push(Statement {
                        kind,
                        agent: mention.agent,
                        written: mention.written,
                    });
                }
            }
        }
        out
    }
}

/// Something the patient says about themselves and a medicine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: StatementKind,
    pub agent: Agent,
    pub written: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Takes,
    AllergicTo,
}

/// A clause: its normalised English words and its characters.
struct Clause {
    words: Vec<String>,
    chars: Vec<char>,
    normalised: String,
}

/// Cut at sentence and clause punctuation (English and Chinese), at "but"/"但是", and at "and"
/// before a new "I"/"my": "I take warfarin and I'm allergic to penicillin" is two statements.
fn clauses(text: &str) -> Vec<Clause> {
    let mut out = Vec::new();
    for part in text.split([
        '.', ',', '!', '?', ';', '\n', '。', '！', '？', '；', '，', '、',
    ]) {
        for piece in split_but(part) {
            let normalised = normalise(piece);
            if normalised.is_empty() && !piece.chars().any(is_han) {
                continue;
            }
            out.push(Clause {
                words: normalised.split(' ').map(str::to_owned).collect(),
                chars: piece.chars().collect(),
                normalised,
            });
        }
    }
    out
}

fn split_but(part: &str) -> Vec<&str> {
    // ASCII lower-casing keeps every byte where it was, so offsets found in it cut `part` at
    // character boundaries whatever else the text holds.
    let lowered = part.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for separator in [
        " but ",
        " and i ",
        " and im ",
        " and i'm ",
        " and i’m ",
        " and my ",
        " while i ",
    ] {
        for (at, _) in lowered.match_indices(separator) {
            // Keep the new subject ("i ..."): cut after "but"/"and"/"while" only.
            let skip = separator[1..].find(' ').map_or(separator.len(), |s| s + 2);
            cuts.push((at, at + skip));
        }
    }
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for (at, resume) in cuts {
        if at < start {
            continue;
        }
        pieces.push(&part[start..at]);
        start = resume;
    }
    pieces.push(&part[start..]);
    pieces.into_iter().flat_map(|p| p.split("但是")).collect()
}

fn find_chars(haystack: &[char], needle: &[char], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| haystack[i..i + needle.len()] == *needle)
}

/// Words that make a clause a question or a negation rather than a statement.
const NOT_A_STATEMENT: &[&str] = &[
    "can i",
    "could i",
    "should i",
    "may i",
    "shall i",
    "is it ok",
    "is it safe",
    "safe to",
    "ok to",
    "okay to",
    "if i",
    "whether",
    "do i need",
    "dont",
    "don t",
    "do not",
    "didnt",
    "didn t",
    "not",
    "no longer",
    "stopped",
    "quit",
    "never",
    "used to",
    "instead of",
    "wondering",
    "what about",
    "how about",
    "how much",
    "how many",
    "with what",
];

const TAKES: &[&str] = &[
    "i take",
    "i m taking",
    "im taking",
    "i am taking",
    "i ve been taking",
    "ive been taking",
    "i have been taking",
    "i m on",
    "im on",
    "i am on",
    "i ve been on",
    "i have been on",
    "i use",
    "i m using",
    "i am using",
    "i was prescribed",
    "i ve been prescribed",
    "i have been prescribed",
    "i got prescribed",
    "my medication",
    "my medications",
    "my meds",
    "my medicine",
    "my medicines",
    "i currently take",
    "currently taking",
    "currently on",
    "prescribed me",
    "put me on",
    "started me on",
    "i started",
    "i just started",
    "i still take",
    "i regularly take",
    "i usually take",
    "i daily take",
    "i take daily",
];

const ALLERGIC: &[&str] = &[
    "allergic to",
    "allergy to",
    "allergies to",
    "allergic reaction to",
    "i react to",
];

const ALLERGY_AFTER: &[&str] = &["allergy", "allergic", "allergies"];

const ZH_NOT_A_STATEMENT: &[&str] = &[
    "能不能",
    "可不可以",
    "可以吃",
    "能吃",
    "能用",
    "可以用",
    "吗",
    "么",
    "不吃",
    "没吃",
    "没有吃",
    "停了",
    "不再",
    "已经停",
    "不过敏",
    "没有过敏",
    "没过敏",
    "是否",
    "会不会",
    "怎么",
];

const ZH_TAKES: &[&str] = &[
    "我在吃",
    "我吃",
    "在吃",
    "正在吃",
    "服用",
    "在服",
    "一直吃",
    "长期吃",
    "每天吃",
    "在用",
    "吃着",
    "用着",
    "开了",
    "我用",
    "我的药",
];

impl Clause {
    fn has_phrase(&self, phrase: &str) -> bool {
        let padded = format!(" {} ", self.normalised);
        padded.contains(&format!(" {phrase} "))
    }

    fn has_zh(&self, phrase: &str) -> bool {
        let text: String = self.chars.iter().collect();
        text.contains(phrase)
    }

    fn says(&self) -> Says {
        let english_no = NOT_A_STATEMENT.iter().any(|p| self.has_phrase(p));
        let chinese_no = ZH_NOT_A_STATEMENT.iter().any(|p| self.has_zh(p));
        if english_no || chinese_no {
            return Says::Negated;
        }
        if ALLERGIC
            .iter()
            .chain(ALLERGY_AFTER)
            .any(|p| self.has_phrase(p))
            || self.has_zh("过敏")
        {
            return Says::Kind(StatementKind::AllergicTo);
        }
        if TAKES.iter().any(|p| self.has_phrase(p)) || ZH_TAKES.iter().any(|p| self.has_zh(p)) {
            return Says::Kind(StatementKind::Takes);
        }
        Says::Nothing
    }

    /// Whether the clause is little more than the names in it ("metformin and ramipril", "二甲双胍").
    fn only_lists(&self, mentions: &[Mention]) -> bool {
        let named_words: usize = mentions
            .iter()
            .filter(|m| !m.written.chars().any(is_han))
            .map(|m| m.written.split(' ').count())
            .sum();
        let named_han: usize = mentions
            .iter()
            .filter(|m| m.written.chars().any(is_han))
            .map(|m| m.written.chars().count())
            .sum();
        let words = self.words.iter().filter(|w| !w.is_empty()).count();
        let han = self.chars.iter().filter(|c| is_han(**c)).count();
        words.saturating_sub(named_words) <= 2 && han.saturating_sub(named_han) <= 2
    }
}

/// What a clause says about the medicines in it.
enum Says {
    /// A question or a negation: nothing to save.
    Negated,
    Kind(StatementKind),
    Nothing,
}
