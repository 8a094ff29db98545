//! Placeholder.

use super::HelperList;

pub(super) const HELPERS: HelperList = &[];
