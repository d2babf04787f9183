//! `Request::parse` (the JSON reader in `read`) against the serde derive reader it replaced
//! (`Request::parse_with_serde`): both must give the same request, or fail with the same
//! `ReviewError` variant and the same echoed uid. Used by the unit tests here and by the
//! fuzz target `review` (through the `serde-reference` feature); not part of the product.

use super::json::{ErrorKind, MAX_DEPTH};
use super::review::{Failure, Request, ReviewError};
use std::mem::discriminant;

/// `Ok` when both readers agree on `body`, or when it hits one of `read`'s two listed
/// deliberate differences (an array where a strict struct is expected; nesting past the
/// limit), which are recognised from the fast reader's error and confirmed on the body.
pub fn fast_matches_serde(body: &[u8]) -> Result<(), String> {
    let fast = Request::parse_traced(body);
    let serde = Request::parse_with_serde(body);
    if let Err(Failure {
        json: Some((kind, offset)),
        ..
    }) = &fast
    {
        match kind {
            ErrorKind::ArrayForStruct if body.get(*offset) == Some(&b'[') => return Ok(()),
            ErrorKind::TooDeep if depth_before(body, *offset) >= MAX_DEPTH => return Ok(()),
            ErrorKind::ArrayForStruct | ErrorKind::TooDeep => {
                return Err(format!(
                    "{kind:?} at byte {offset} is not confirmed by the body: {fast:?}"
                ))
            }
            ErrorKind::Syntax | ErrorKind::Data => {}
        }
    }
    match (fast, serde) {
        (Ok(fast), Ok(serde)) if fast == serde => Ok(()),
        (Err(fast), Err((uid, error))) if fast.uid == uid && same_error(&fast.error, &error) => {
            Ok(())
        }
        (fast, serde) => Err(format!("fast: {fast:#?}\nserde: {serde:#?}")),
    }
}

/// Same variant; the messages of JSON errors differ by design (both say what and where), the
/// rest come from the same code and must be equal.
fn same_error(a: &ReviewError, b: &ReviewError) -> bool {
    match (a, b) {
        (ReviewError::NotJson(_), ReviewError::NotJson(_))
        | (ReviewError::NotAReview(_), ReviewError::NotAReview(_)) => true,
        _ => discriminant(a) == discriminant(b) && a == b,
    }
}

/// Open brackets before `offset`, counted naively (outside strings): an independent check that
/// the reader's depth error is real.
fn depth_before(body: &[u8], offset: usize) -> usize {
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    for &b in body.iter().take(offset) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests;
