//! Text from elsewhere (a registry's error document, a host's failure) made
//! fit for one line of a message or an event.

/// `text` as one line of at most `max_bytes` bytes plus `…` when cut:
/// control characters (line breaks, escapes) become spaces, runs of
/// whitespace one space, and the ends are trimmed. The cut falls on a
/// character boundary.
pub fn one_line(text: &str, max_bytes: usize) -> String {
    let mut line = String::with_capacity(text.len().min(max_bytes + 4));
    for word in text
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
    {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        if line.len() > max_bytes {
            break;
        }
    }
    if line.len() > max_bytes {
        line.truncate(line.floor_char_boundary(max_bytes));
        line.truncate(line.trim_end().len());
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn text_becomes_one_bounded_line() {
        assert_eq!(
            one_line("  denied\r\n\x1b[31mred\t ", 100),
            "denied [31mred"
        );
        assert_eq!(one_line("no\nhost\r\n", 100), "no host");
        let long = one_line(&"ab ".repeat(500), 300);
        // Cut after a word: no space before the `…`.
        assert_eq!(long.len(), 299 + '…'.len_utf8());
        assert!(long.ends_with("ab…"));
        let wide = one_line(&"é".repeat(100), 51);
        assert_eq!(wide, format!("{}…", "é".repeat(25)));
        assert_eq!(one_line("exactly", 7), "exactly");
    }
}
