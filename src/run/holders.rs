//! Who holds the lock, as the `busy`, `waiting` and `replacing` lines' fields name them.

use crate::lock::Holder;
use crate::say;

/// Who holds the lock, for a `busy` or `waiting` line: `holder`, as `status --json` shows it
/// without its token; for a semaphore, `limit` and each place's in
/// `holders`.
pub(super) fn holder_fields(holders: &[Holder]) -> Vec<say::Field> {
    let view = |holder: &Holder| {
        let mut view = serde_json::to_value(holder).unwrap_or_default();
        if let Some(view) = view.as_object_mut() {
            view.remove("token");
        }
        view
    };
    match holders {
        [holder] => vec![("holder", view(holder))],
        _ => vec![
            ("limit", holders.len().into()),
            ("holders", holders.iter().map(view).collect()),
        ],
    }
}
