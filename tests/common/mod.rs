//! Helpers shared by the end-to-end tests.

use std::collections::BTreeSet;

use audex_marketo_sim::SimHandle;

/// The emails of a list's members, as the simulator holds them.
pub fn list_emails(sim: &SimHandle, list: u64) -> BTreeSet<String> {
    sim.list_members(list)
        .into_iter()
        .filter_map(|id| sim.lead(id))
        .filter_map(|l| {
            l.fields
                .get("email")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .collect()
}
