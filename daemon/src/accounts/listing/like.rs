//! SQL `LIKE` patterns, matched in time linear in the text.
//!
//! `%` matches any run of characters, `_` exactly one, and `\` makes the next character literal
//! (PostgreSQL's default escape, which Arvados inherits: `\%`, `\_`, `\\`); a pattern may not end
//! with a lone `\`. Characters are Unicode scalar values.
//!
//! # Why this algorithm
//!
//! The usual two-pointer matcher with one backtrack point re-scans the text from each `%` and costs
//! O(n·m) for a text of n and a pattern of m characters; a recursive one is exponential. Both let a
//! user burn seconds of CPU per item with a crafted pattern. Here a pattern is split at its `%`s
//! into segments of fixed length (literals and `_`):
//!
//! * no `%`: the text must have the segment's length and match it character by character;
//! * otherwise the first segment must match the start of the text, the last one its end, and the
//!   segments between must occur in order, without overlapping, in what lies between. Taking each
//!   segment's *leftmost* occurrence is enough: its segments have fixed lengths, so the leftmost
//!   occurrence also ends first and leaves the most text to the segments after it (any placement
//!   that works can be moved left to the greedy one).
//!
//! A segment's leftmost occurrence is found with the bit-parallel Shift-And automaton (one bit per
//! pattern position, `_` sets its bit for every character), one step per text character, and each
//! search starts where the previous occurrence ended. So every text character is stepped over at
//! most once for the whole pattern: O(m + n·⌈k/64⌉) time for a longest segment of k characters,
//! with no backtracking and no allocation per text character. With operands bounded at
//! [`MAX_FILTER_OPERAND_CHARS`](crate::accounts::bounds::MAX_FILTER_OPERAND_CHARS) that is at most
//! 16 word operations per text character, whatever the pattern. (Compiling to the `regex` crate
//! would give O(m·n) in its worst case, and a dependency, for the same language.)

use crate::accounts::error::{Error, Result};

/// One position of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// This character.
    Lit(char),
    /// `_`: any one character.
    One,
}

/// A run of the pattern between two `%`s, compiled for Shift-And.
#[derive(Debug, Clone)]
struct Segment {
    toks: Vec<Tok>,
    /// Bits of the `_` positions, `words` u64s, bit i = position i.
    wild: Vec<u64>,
    /// Per literal character (sorted), the bits of its positions and of the `_` positions.
    lits: Vec<(char, Vec<u64>)>,
    words: usize,
}

impl Segment {
    fn new(toks: Vec<Tok>) -> Segment {
        let words = toks.len().div_ceil(64).max(1);
        let mut wild = vec![0u64; words];
        for (i, t) in toks.iter().enumerate() {
            if *t == Tok::One {
                wild[i / 64] |= 1 << (i % 64);
            }
        }
        let mut chars: Vec<char> =
            toks.iter().filter_map(|t| if let Tok::Lit(c) = t { Some(*c) } else { None }).collect();
        chars.sort_unstable();
        chars.dedup();
        let lits = chars
            .into_iter()
            .map(|c| {
                let mut m = wild.clone();
                for (i, t) in toks.iter().enumerate() {
                    if *t == Tok::Lit(c) {
                        m[i / 64] |= 1 << (i % 64);
                    }
                }
                (c, m)
            })
            .collect();
        Segment { toks, wild, lits, words }
    }

    fn mask(&self, c: char) -> &[u64] {
        match self.lits.binary_search_by(|(l, _)| l.cmp(&c)) {
            Ok(i) => &self.lits[i].1,
            Err(_) => &self.wild,
        }
    }

    /// The text after this segment's leftmost occurrence in `text`, if there is one.
    fn find_after<'t>(&self, text: &'t str) -> Option<&'t str> {
        let k = self.toks.len();
        if k == 0 {
            return Some(text);
        }
        let (last_word, last_bit) = ((k - 1) / 64, 1u64 << ((k - 1) % 64));
        let mut state = vec![0u64; self.words];
        for (i, c) in text.char_indices() {
            // state = ((state << 1) | 1) & mask(c), across words.
            let mask = self.mask(c);
            let mut carry = 1u64;
            for (w, m) in state.iter_mut().zip(mask) {
                let next_carry = *w >> 63;
                *w = ((*w << 1) | carry) & m;
                carry = next_carry;
            }
            if state[last_word] & last_bit != 0 {
                return Some(&text[i + c.len_utf8()..]);
            }
        }
        None
    }
}

fn tok_matches(t: Tok, c: char) -> bool {
    match t {
        Tok::One => true,
        Tok::Lit(l) => l == c,
    }
}

/// The text after `toks` matched at its start, if they do.
fn strip_prefix<'t>(toks: &[Tok], text: &'t str) -> Option<&'t str> {
    let mut chars = text.char_indices();
    for t in toks {
        let (_, c) = chars.next()?;
        if !tok_matches(*t, c) {
            return None;
        }
    }
    Some(chars.as_str())
}

/// The text before `toks` matched at its end, if they do.
fn strip_suffix<'t>(toks: &[Tok], text: &'t str) -> Option<&'t str> {
    let mut chars = text.char_indices();
    for t in toks.iter().rev() {
        let (_, c) = chars.next_back()?;
        if !tok_matches(*t, c) {
            return None;
        }
    }
    Some(chars.as_str())
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone)]
pub struct LikePattern {
    /// Before the first `%` (the whole pattern when there is none).
    first: Vec<Tok>,
    /// Between `%`s, empty ones left out.
    middle: Vec<Segment>,
    /// After the last `%`; `None` when the pattern has no `%`.
    last: Option<Vec<Tok>>,
}

impl LikePattern {
    /// Compiles `pattern`; 422 when it ends with a lone escape character.
    pub fn new(pattern: &str) -> Result<LikePattern> {
        let mut segments: Vec<Vec<Tok>> = vec![Vec::new()];
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let tok = match c {
                '%' => {
                    segments.push(Vec::new());
                    continue;
                }
                '_' => Tok::One,
                '\\' => match chars.next() {
                    Some(e) => Tok::Lit(e),
                    None => {
                        return Err(Error::unprocessable(
                            "invalid_list_parameter",
                            "filters: a like pattern must not end with the escape character \\",
                        ));
                    }
                },
                c => Tok::Lit(c),
            };
            if let Some(s) = segments.last_mut() {
                s.push(tok);
            }
        }
        let mut it = segments.into_iter();
        let first = it.next().unwrap_or_default();
        let mut rest: Vec<Vec<Tok>> = it.collect();
        let last = rest.pop();
        let middle = rest.into_iter().filter(|s| !s.is_empty()).map(Segment::new).collect();
        Ok(LikePattern { first, middle, last })
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let Some(last) = &self.last else {
            return strip_prefix(&self.first, text).is_some_and(str::is_empty);
        };
        let Some(rest) = strip_prefix(&self.first, text) else {
            return false;
        };
        let Some(mut rest) = strip_suffix(last, rest) else {
            return false;
        };
        for seg in &self.middle {
            match seg.find_after(rest) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn like(p: &str, t: &str) -> bool {
        LikePattern::new(p).unwrap().matches(t)
    }

    /// The definition, by dynamic programming over (pattern position, text position): obviously
    /// right and O(n·m), for comparing on small inputs. `None` for a pattern ending in `\`.
    fn reference(pattern: &str, text: &str) -> Option<bool> {
        enum P {
            Any,
            One,
            Lit(char),
        }
        let mut p = Vec::new();
        let mut cs = pattern.chars();
        while let Some(c) = cs.next() {
            p.push(match c {
                '%' => P::Any,
                '_' => P::One,
                '\\' => P::Lit(cs.next()?),
                c => P::Lit(c),
            });
        }
        let t: Vec<char> = text.chars().collect();
        // m[i][j]: p[..i] matches t[..j].
        let mut m = vec![vec![false; t.len() + 1]; p.len() + 1];
        m[0][0] = true;
        for i in 1..=p.len() {
            for j in 0..=t.len() {
                m[i][j] = match p[i - 1] {
                    P::Any => m[i - 1][j] || (j > 0 && m[i][j - 1]),
                    P::One => j > 0 && m[i - 1][j - 1],
                    P::Lit(c) => j > 0 && t[j - 1] == c && m[i - 1][j - 1],
                };
            }
        }
        Some(m[p.len()][t.len()])
    }

    #[test]
    fn wildcards_and_anchors() {
        assert!(like("a%", "abc"));
        assert!(like("%b%", "abc"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("%", ""));
        assert!(!like("_", ""));
        assert!(like("", ""));
        assert!(!like("", "a"));
        assert!(!like("b%", "abc"));
        assert!(like("%c", "abc"));
        assert!(!like("%b", "abc"));
        assert!(like("a%%c", "ac"));
        // The prefix and the suffix may not overlap.
        assert!(!like("ab%ba", "aba"));
        assert!(like("ab%ba", "abba"));
        // Underscores match any one character, multi-byte ones included.
        assert!(like("_é_", "aéb"));
        assert!(like("%ü", "grün_ü"));
        assert!(!like("__", "é"));
    }

    #[test]
    fn escapes_are_literal() {
        assert!(like("50\\%", "50%"));
        assert!(!like("50\\%", "500"));
        assert!(like("a\\_b", "a_b"));
        assert!(!like("a\\_b", "axb"));
        assert!(like("%\\\\%", "back\\slash"));
        assert!(!like("%\\\\%", "no slash"));
        // An escaped ordinary character is that character.
        assert!(like("\\a", "a"));
        assert!(LikePattern::new("abc\\").is_err());
    }

    #[test]
    fn long_segments_span_several_words() {
        let seg = "ab_".repeat(50); // 150 positions: three words
        let text = format!("zz{}zz", "abX".repeat(50));
        assert!(like(&format!("%{seg}%"), &text));
        assert!(!like(&format!("%{seg}b%"), &text));
        assert!(like(&format!("zz{seg}zz"), &text));
    }

    #[test]
    fn pathological_patterns_answer_rightly() {
        let name = "x".repeat(255);
        let many = format!("{}%", "%x".repeat(200));
        assert!(like(&many, &name));
        let too_many = format!("{}%", "%x".repeat(256));
        assert!(!like(&too_many, &name));
        assert!(!like(&format!("{}y", "%x".repeat(200)), &name));
        let long = "x".repeat(4 << 20);
        assert!(!like(&format!("%{}y%", "x".repeat(1000)), &long));
        assert!(like(&format!("%{}%", "_".repeat(1000)), &long));
    }

    proptest! {
        #[test]
        fn agrees_with_the_definition(p in "[ab%_\\\\]{0,12}", t in "[ab%_\\\\]{0,16}") {
            let expected = reference(&p, &t);
            let got = LikePattern::new(&p).ok().map(|c| c.matches(&t));
            prop_assert_eq!(got, expected, "pattern {:?} text {:?}", p, t);
        }

        /// Segments longer than one 64-bit word, mostly `_` so that some of them match.
        #[test]
        fn agrees_on_long_segments(
            seg in prop::collection::vec(prop_oneof![3 => Just('_'), 1 => Just('a')], 60..140),
            t in prop::collection::vec(prop_oneof![4 => Just('a'), 1 => Just('b')], 0..220),
            shape in 0..4u8,
        ) {
            let seg: String = seg.into_iter().collect();
            let t: String = t.into_iter().collect();
            let p = match shape {
                0 => format!("%{seg}%"),
                1 => format!("{seg}%"),
                2 => format!("%{seg}"),
                _ => format!("%a%{seg}%{seg}%"),
            };
            let got = LikePattern::new(&p).unwrap().matches(&t);
            prop_assert_eq!(Some(got), reference(&p, &t), "pattern {:?} text {:?}", p, t);
        }
    }
}
