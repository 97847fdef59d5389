//! Claim ids: the same `lbx_` + 12 lowercase hex digits pattern as `lease::LeaseId`, checked
//! here again (this module may not import `lease`) so that no string can name a file outside
//! `claims/`.

use super::OwnershipError;

/// Check that `id` is a lease id (`lbx_` followed by 12 lowercase hex digits).
///
/// # Errors
///
/// [`OwnershipError::InvalidId`] for anything else.
pub fn validate_claim_id(id: &str) -> Result<(), OwnershipError> {
    if is_claim_id(id) {
        Ok(())
    } else {
        Err(OwnershipError::InvalidId { id: id.to_owned() })
    }
}

/// Whether `id` is a lease id (`lbx_` followed by 12 lowercase hex digits).
#[must_use]
pub fn is_claim_id(id: &str) -> bool {
    id.len() == 16
        && id.starts_with("lbx_")
        && id.as_bytes()[4..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_ids_pass() {
        assert!(validate_claim_id("lbx_0123456789ab").is_ok());
        assert!(validate_claim_id("lbx_ffffffffffff").is_ok());
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "lbx_",
            "lbx_0123456789aB",
            "lbx_../../etc/pa",
            "lbx_0123456789a/",
            "xyz_0123456789ab",
            "lbx_0123456789abc",
            "lbx_0123456789a",
            "lbx_01234567\u{e9}9a",
            "../lbx_012345678",
        ] {
            let err = validate_claim_id(bad).unwrap_err();
            assert!(matches!(err, OwnershipError::InvalidId { .. }), "{bad}");
            assert!(err.to_string().contains("is not a lease id"));
        }
    }
}
