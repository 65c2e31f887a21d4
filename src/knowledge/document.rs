//! Documents for the knowledge base: metadata from front matter (or the first lines), and passages
//! cut on headings and paragraphs within a token budget, each carrying its heading path.

/// A document's metadata and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub title: String,
    /// A URL or DOI link.
    pub source: Option<String>,
    pub licence: Option<String>,
    pub published: Option<String>,
    /// The text without its front matter.
    pub body: String,
}

/// One passage: the headings above it and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    pub heading: String,
    pub text: String,
}

impl Passage {
    /// What is embedded and shown: the document title and headings give a passage its context.
    pub fn embedding_text(&self, title: &str) -> String {
        if self.heading.is_empty() {
            format!("{title}\n{}", self.text)
        } else {
            format!("{title} — {}\n{}", self.heading, self.text)
        }
    }
}

/// Reads `title:`, `source:`, `licence:` (or `license:`) and `date:` from YAML-style front matter
/// between `---` lines, or from `Title:`/`Source:`/... lines at the top; the title falls back to the
/// first `#` heading, then to `fallback_title`.
pub fn parse(text: &str, fallback_title: &str) -> Document {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let front_matter = text.strip_prefix("---\n").and_then(|rest| {
        rest.find("\n---").map(|end| {
            let after = &rest[end + 4..];
            (&rest[..end], after.strip_prefix('\n').unwrap_or(after))
        })
    });
    let (header, body): (Vec<&str>, String) = match front_matter {
        Some((header, body)) => (header.lines().collect(), body.to_owned()),
        // No front matter: "Key: value" lines among the first lines (under a title, say).
        None => {
            let mut header = Vec::new();
            let mut kept = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let is_meta = n < 8
                    && line.split_once(':').is_some_and(|(k, v)| {
                        key(k).is_some() && !k.trim().contains(' ') && !v.trim().is_empty()
                    });
                if is_meta {
                    header.push(line);
                } else {
                    kept.push(line);
                }
            }
            (header, kept.join("\n"))
        }
    };
    let mut document = Document {
        title: String::new(),
        source: None,
        licence: None,
        published: None,
        body: body.trim().to_owned(),
    };
    for line in header {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().trim_matches('"').trim().to_owned();
        if value.is_empty() {
            continue;
        }
        match key(name) {
            Some(Key::Title) => document.title = value,
            Some(Key::Source) => document.source = Some(value),
            Some(Key::Licence) => document.licence = Some(value),
            Some(Key::Date) => document.published = Some(value),
            None => {}
        }
    }
    if document.title.is_empty() {
        document.title = document
            .body
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|| fallback_title.to_owned());
    }
    document
}

enum Key {
    Title,
    Source,
    Licence,
    Date,
}

fn key(name: &str) -> Option<Key> {
    match name.trim().to_ascii_lowercase().as_str() {
        "title" => Some(Key::Title),
        "source" | "url" | "doi" => Some(Key::Source),
        "licence" | "license" => Some(Key::Licence),
        "date" | "published" | "year" => Some(Key::Date),
        _ => None,
    }
}

/// Cuts the body into passages of at most `budget` tokens (as `count` measures them): paragraphs
/// under the same heading are joined while they fit; a paragraph too long on its own is cut at
/// sentence ends. The document's own `#` title line is not a passage.
pub fn passages(document: &Document, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Passage> {
    let mut out = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let flush =
        |headings: &[(usize, String)], current: &mut Vec<String>, out: &mut Vec<Passage>| {
            if current.is_empty() {
                return;
            }
            let heading = headings
                .iter()
                .map(|(_, h)| h.as_str())
                .collect::<Vec<_>>()
                .join(" › ");
            out.push(Passage {
                heading,
                text: current.join("\n\n"),
            });
            current.clear();
        };
    for block in document
        .body
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        let mut paragraph_lines = Vec::new();
        for line in block.lines() {
            let level = line.chars().take_while(|&c| c == '#').count();
            if (1..=6).contains(&level) && line[level..].starts_with(' ') {
                flush(&headings, &mut current, &mut out);
                if !paragraph_lines.is_empty() {
                    paragraph_lines.clear();
                }
                let title = line[level..].trim().to_owned();
                if level == 1 && title == document.title {
                    continue;
                }
                headings.retain(|(l, _)| *l < level);
                headings.push((level, title));
            } else {
                paragraph_lines.push(line);
            }
        }
        if paragraph_lines.is_empty() {
            continue;
        }
        let paragraph = paragraph_lines.join("\n");
        for piece in fit(&paragraph, budget, count) {
            let joined_len = count(&current.join("\n\n")) + count(&piece);
            if !current.is_empty() && joined_len > budget {
                flush(&headings, &mut current, &mut out);
            }
            current.push(piece);
        }
    }
    flush(&headings, &mut current, &mut out);
    out
}

/// A paragraph as pieces within the budget, cut after sentences (or lines, for lists).
fn fit(paragraph: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<String> {
    if count(paragraph) <= budget {
        return vec![paragraph.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    for sentence in paragraph.split_inclusive(['.', '\n', '。']) {
        if !current.is_empty() && count(&current) + count(sentence) > budget {
            pieces.push(current.trim().to_owned());
            current.clear();
        }
        current.push_str(sentence);
    }
    if !current.trim().is_empty() {
        pieces.push(current.trim().to_owned());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    #[test]
    fn front_matter_or_top_lines_give_the_metadata() {
        let d = parse(
            "---\ntitle: \"Asthma\"\nsource: https://doi.org/10.1/x\nlicence: MIT\ndate: 2024\n---\n# Asthma\n\nText.",
            "file",
        );
        assert_eq!(d.title, "Asthma");
        assert_eq!(d.source.as_deref(), Some("https://doi.org/10.1/x"));
        assert_eq!(d.licence.as_deref(), Some("MIT"));
        assert_eq!(d.published.as_deref(), Some("2024"));
        assert!(d.body.starts_with("# Asthma"));

        let d = parse("Title: Colds\nSource: https://example.org\n\nRest.", "file");
        assert_eq!((d.title.as_str(), d.body.as_str()), ("Colds", "Rest."));
        let d = parse(
            "# Burns\n\nSource: https://example.org/b\n\nCool it. Note: use water.",
            "f",
        );
        assert_eq!(d.source.as_deref(), Some("https://example.org/b"));
        assert_eq!(d.body, "# Burns\n\n\nCool it. Note: use water.");
        let d = parse("# Fever in children\n\nText", "file");
        assert_eq!(d.title, "Fever in children");
        assert_eq!(parse("plain text", "notes").title, "notes");
    }

    #[test]
    fn passages_follow_headings_and_stay_within_the_budget() {
        let body = format!(
            "# Guide\n\n## Symptoms\n\nCough and fever.\n\nSore throat.\n\n## Treatment\n\n### At home\n\n{}\n\n## When to see a doctor\n\nIf breathing is hard.",
            "Rest well. ".repeat(30)
        );
        let d = parse(&body, "guide");
        let p = passages(&d, 20, &words);
        assert_eq!(p[0].heading, "Symptoms");
        assert_eq!(p[0].text, "Cough and fever.\n\nSore throat.");
        assert!(p.iter().all(|p| words(&p.text) <= 20));
        assert!(p.iter().any(|p| p.heading == "Treatment › At home"));
        assert_eq!(p.last().unwrap().heading, "When to see a doctor");
        assert!(!p.iter().any(|p| p.text.contains("# Guide")));
    }
}
