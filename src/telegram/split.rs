//! Telegram accepts at most 4096 characters (UTF-16 code units) per message; longer answers are cut
//! at paragraph, line or sentence boundaries, never inside a word or a character.

/// Telegram's limit, in UTF-16 code units.
pub const TELEGRAM_LIMIT: usize = 4096;

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Cuts `text` into pieces of at most `limit` UTF-16 units, preferring (in order) a blank line, a
/// line break, the end of a sentence, a space; a text with none of these is cut between
/// characters. The pieces, concatenated, are the text.
pub fn split_message(text: &str, limit: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while utf16_len(rest) > limit {
        // The longest prefix within the limit, on a character boundary.
        let mut units = 0;
        let mut fits = 0;
        for (i, c) in rest.char_indices() {
            if units + c.len_utf16() > limit {
                break;
            }
            units += c.len_utf16();
            fits = i + c.len_utf8();
        }
        let window = &rest[..fits];
        let cut = ["\n\n", "\n", ". ", "。", "! ", "? ", "！", "？", " "]
            .iter()
            .filter_map(|sep| window.rfind(sep).map(|i| i + sep.len()))
            // A cut in the first quarter would leave a tiny piece; look for a later boundary.
            .find(|&i| i > fits / 4)
            .unwrap_or(fits);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn long_answers_are_cut_at_paragraphs_then_sentences() {
        let paragraph = "Rest and drink fluids. ".repeat(100);
        let text = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
        let pieces = split_message(&text, TELEGRAM_LIMIT);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.len() >= 2);
        for piece in &pieces[..pieces.len() - 1] {
            assert!(
                piece.ends_with("\n\n") || piece.ends_with(". "),
                "{piece:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn pieces_fit_and_make_the_text(text in "(\\PC{0,40}[ .\n。😀]){0,400}", limit in 8usize..300) {
            let pieces = split_message(&text, limit);
            prop_assert_eq!(pieces.concat(), text.clone());
            for piece in &pieces {
                prop_assert!(utf16_len(piece) <= limit);
                prop_assert!(!piece.is_empty() || text.is_empty());
            }
        }
    }
}
