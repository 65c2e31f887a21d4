//! Turning generated token ids into text pieces that never split a UTF-8 character.

use super::tokenizer::ModelTokenizer;

/// Decodes a growing list of token ids and hands out only the newly completed text. Byte-level
/// tokens can end in the middle of a multi-byte character; such a tail is held back until the next
/// token completes it (or the generation ends).
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    emitted: String,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns the text it completes, if any.
    pub fn push(&mut self, tokenizer: &ModelTokenizer, id: u32) -> Option<String> {
        self.ids.push(id);
        let text = tokenizer.decode(&self.ids).ok()?;
        if text.ends_with('\u{FFFD}') {
            return None;
        }
        self.take_new(text)
    }

    /// Ends the stream: returns whatever is left and the full text (the concatenation of every
    /// piece handed out).
    pub fn finish(mut self, tokenizer: &ModelTokenizer) -> (Option<String>, String) {
        let text = tokenizer.decode(&self.ids).unwrap_or_default();
        let rest = self.take_new(text);
        (rest, self.emitted)
    }

    fn take_new(&mut self, text: String) -> Option<String> {
        // Decoding is prefix-stable once the held-back tail is complete; if a tokenizer ever
        // rewrote earlier text, keep the pieces authoritative rather than repeat text.
        let piece = match text.strip_prefix(self.emitted.as_str()) {
            Some(new) => new.to_owned(),
            None => return None,
        };
        if piece.is_empty() {
            return None;
        }
        self.emitted.push_str(&piece);
        Some(piece)
    }
}
