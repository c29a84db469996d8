//! Checks shared by every free-text input a person sees again (names, companies, descriptions, labels).
//!
//! Control characters are refused by each field's own parser; this module adds the invisible characters
//! that let one string display as another: bidirectional overrides and isolates (`U+202E` turns
//! "gnp.exe" into "exe.png" on screen) and zero-width characters (two names that look identical but are
//! not). They are `Cf` (format) characters, so `char::is_control` does not catch them.

/// The first character of `text` that can disguise how it displays, if any.
pub fn spoofing_char(text: &str) -> Option<char> {
    text.chars().find(|&c| is_spoofing(c))
}

/// Bidirectional formatting characters (UAX #9) and zero-width / invisible joiners and marks.
fn is_spoofing(c: char) -> bool {
    matches!(
        c,
        // Bidirectional marks, embeddings, overrides and isolates.
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        // Zero-width space, non-joiner, joiner, word joiner, invisible operators, BOM.
        | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
        // Mongolian vowel separator, soft hyphen, combining grapheme joiner, Hangul fillers.
        | '\u{180E}' | '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bidi_and_zero_width_characters() {
        assert_eq!(spoofing_char("Ada Lovelace"), None);
        assert_eq!(spoofing_char("Zoë Ørsted-Łukasz 李"), None);
        assert_eq!(spoofing_char("evil\u{202E}gnp.exe"), Some('\u{202E}'));
        assert_eq!(spoofing_char("a\u{2067}b"), Some('\u{2067}'));
        assert_eq!(spoofing_char("Ad\u{200B}a"), Some('\u{200B}'));
        assert_eq!(spoofing_char("Ada\u{200D}"), Some('\u{200D}'));
        assert_eq!(spoofing_char("\u{FEFF}Ada"), Some('\u{FEFF}'));
        assert_eq!(spoofing_char("Ad\u{00AD}a"), Some('\u{00AD}'));
        assert_eq!(spoofing_char("\u{200F}"), Some('\u{200F}'));
    }
}
