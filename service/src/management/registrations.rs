//! `/registrations`: the records devices' registrations wrote.

use serde_json::Value;

use attest_dps::query::{Page, Paging, check_query};

use super::{paged, registration_not_found};
use crate::{Answer, Reply, Service};

impl Service {
    /// `GET /registrations/{id}`.
    pub fn get_registration(&self, id: &str) -> Answer {
        match self.read("the registration record", |tx| Ok(tx.registration(id)?))? {
            Some(record) => Ok(Reply::entity(record.doc.doc)),
            None => Err(registration_not_found(id)),
        }
    }

    /// `DELETE /registrations/{id}`.
    pub fn delete_registration(&self, id: &str, if_match: Option<&str>) -> Answer {
        self.delete_guarded(
            &format!("registration '{id}'"),
            registration_not_found(id),
            if_match,
            |tx| Ok(tx.registration(id)?.map(|r| r.doc.etag)),
            |tx| Ok(tx.delete_registration(id)?),
        )
    }

    /// `POST /registrations/{groupId}/query`: one keyset page of the
    /// group's registration records.
    pub fn query_registrations(&self, group_id: &str, body: &Value, paging: &Paging) -> Answer {
        check_query(body, "registrations")?;
        let page = Page::of(&format!("registrations/{group_id}"), paging)?;
        let (items, next) = self.read("the registration records", |tx| {
            let rows = tx.registrations_of_group(group_id, page.after.as_deref(), page.fetch())?;
            Ok(page.finish(rows.into_iter().map(|(k, d)| (k, d.doc)).collect()))
        })?;
        Ok(paged(items, next, &page, "deviceRegistration"))
    }
}
