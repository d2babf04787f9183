//! `Request::parse` (the JSON reader in `read`) against the serde derive reader it replaced
//! (`Request::parse_with_serde`): both must give the same request, or fail with the same
//! `ReviewError` variant and the same echoed uid. Used by the unit tests here and by the
//! fuzz target `review` (through the `serde-reference` feature); not part of the product.

use super::json::ErrorKind;
use super::review::{Failure, Request, ReviewError};
use std::mem::discriminant;

/// `Ok` when both readers agree on `body`, or when it hits `read`'s one listed deliberate
/// difference (an array where a strict struct is expected), which is recognised from the
/// fast reader's error and confirmed on the body.
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
            ErrorKind::ArrayForStruct => {
                return Err(format!(
                    "{kind:?} at byte {offset} is not confirmed by the body: {fast:?}"
                ))
            }
            ErrorKind::Syntax | ErrorKind::TooDeep | ErrorKind::Data => {}
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

#[cfg(test)]
mod tests;
