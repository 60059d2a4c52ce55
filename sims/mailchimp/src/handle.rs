//! Seeding and inspection on `SimHandle`, for Rust tests and benchmarks
//! (the side channel offers the same over HTTP).

use crate::config::SimAudience;
use crate::seed::{self, SimContact};
use crate::server::{lock, SimHandle};
use crate::store::{SegKind, Status};

impl SimHandle {
    /// Creates or replaces an audience (contacts and segments start empty).
    pub fn add_audience(&self, audience: &SimAudience) -> Result<(), String> {
        seed::add_audience(&mut lock(&self.sim.store), audience)
    }

    /// Seeds contacts with one lock (a million at once is fine). Stops at the
    /// first refused contact and says why.
    pub fn seed_contacts(
        &self,
        list: &str,
        contacts: impl IntoIterator<Item = SimContact>,
    ) -> Result<usize, String> {
        seed::contacts(&mut lock(&self.sim.store), list, contacts)
    }

    /// Seeds one contact with a status and no merge values.
    pub fn seed_contact(&self, list: &str, email: &str, status: Status) -> Result<(), String> {
        self.seed_contacts(list, [SimContact::new(email, status)])
            .map(|_| ())
    }

    /// Records emails as permanently deleted ("Forgotten Email Not Subscribed").
    pub fn forget(&self, list: &str, emails: &[&str]) -> Result<(), String> {
        let emails: Vec<String> = emails.iter().map(|e| (*e).to_string()).collect();
        seed::forget(&mut lock(&self.sim.store), list, &emails)
    }

    /// Creates a static segment (a tag) holding the present contacts among `emails`.
    pub fn create_static_segment(
        &self,
        list: &str,
        name: &str,
        emails: &[String],
    ) -> Result<u64, String> {
        seed::segment(
            &mut lock(&self.sim.store),
            list,
            name,
            SegKind::Static,
            emails,
        )
    }

    /// Creates a saved (conditional) segment, which static-segment calls refuse.
    pub fn create_saved_segment(&self, list: &str, name: &str) -> Result<u64, String> {
        seed::segment(&mut lock(&self.sim.store), list, name, SegKind::Saved, &[])
    }

    /// Adds contacts to a segment without the API; returns how many were new.
    pub fn add_to_segment(&self, list: &str, seg: u64, emails: &[String]) -> Result<usize, String> {
        seed::add_to_segment(&mut lock(&self.sim.store), list, seg, emails)
    }

    /// Removes contacts from a segment without the API (a marketer untagging
    /// by hand); returns how many were members.
    pub fn remove_from_segment(
        &self,
        list: &str,
        seg: u64,
        emails: &[String],
    ) -> Result<usize, String> {
        seed::remove_from_segment(&mut lock(&self.sim.store), list, seg, emails)
    }

    /// Changes a contact's status outside the API (the person unsubscribes,
    /// an address bounces, `Deleted` = permanently deleted). False if there
    /// is no such contact.
    pub fn set_status(&self, list: &str, email: &str, status: Status) -> bool {
        seed::set_status(&mut lock(&self.sim.store), list, email, status)
    }

    /// Every member of a segment in every status, as emails in contact order.
    pub fn segment_members(&self, list: &str, seg: u64) -> Option<Vec<String>> {
        seed::segment_members(&lock(&self.sim.store), list, seg, 0, usize::MAX).map(|(e, _)| e)
    }

    /// How many contacts a segment holds, in every status.
    pub fn segment_member_count(&self, list: &str, seg: u64) -> Option<usize> {
        let store = lock(&self.sim.store);
        store
            .audiences
            .get(list)?
            .segments
            .get(&seg)
            .map(|s| s.members.len())
    }

    /// The id of the segment with this name.
    pub fn segment_id(&self, list: &str, name: &str) -> Option<u64> {
        lock(&self.sim.store)
            .audiences
            .get(list)?
            .segment_named(name)
    }

    /// A contact by email (case-insensitive), archived ones included.
    pub fn contact(&self, list: &str, email: &str) -> Option<SimContact> {
        seed::contact(&lock(&self.sim.store), list, email)
    }

    /// Whether an email was permanently deleted.
    pub fn is_forgotten(&self, list: &str, email: &str) -> bool {
        seed::is_forgotten(&lock(&self.sim.store), list, email)
    }

    /// Contacts in an audience, every status (permanently deleted ones excluded).
    pub fn contact_count(&self, list: &str) -> usize {
        lock(&self.sim.store).audiences.get(list).map_or(0, |a| {
            a.contacts
                .iter()
                .filter(|c| c.status != Status::Deleted)
                .count()
        })
    }
}
