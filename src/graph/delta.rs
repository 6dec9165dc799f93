//! calendarView delta: a round of pages from a window (or a saved delta
//! link) to the next delta link.
//!
//! Each page's changes are filtered to the window (delta also reports
//! events outside it), its `@removed` ids are passed on (delta cannot say
//! where a removed event was, so the caller matches them against what it
//! knows), and occurrences that came sparse (ids and times only) are read in
//! full through `$batch`. An expired delta link surfaces as
//! [`GraphError::ResyncRequired`]: the caller starts a new round from the
//! window.

use std::collections::HashMap;

use reqwest::Method;
use url::Url;

use super::batch::BatchRequest;
use super::client::{Call, GraphClient};
use super::error::GraphError;
use super::events::{FollowedLinks, PAGE_SIZE, Page, Window};
use super::model::Event;

/// One page of a delta round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaPage {
    /// Added or changed events overlapping the window, read in full.
    pub changed: Vec<Event>,
    /// Ids of events that left the view (deleted, or moved out of the window).
    pub removed: Vec<String>,
    /// Set on the last page: where the next round starts.
    pub delta_link: Option<String>,
}

/// A whole round, every page merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeltaRound {
    pub changed: Vec<Event>,
    pub removed: Vec<String>,
    pub delta_link: String,
}

/// The first page of a mailbox's delta round from a saved link, read ahead
/// with other mailboxes' in one `$batch` ([`GraphClient::first_delta_pages`]).
#[derive(Debug, Clone)]
pub struct FirstDeltaPage {
    link: String,
    page: Page<Event>,
}

impl FirstDeltaPage {
    /// The delta link the page was read from.
    pub fn link(&self) -> &str {
        &self.link
    }
}

/// The pages of one delta round, fetched one at a time
/// ([`DeltaPages::next_page`]) so a caller can apply and checkpoint each.
#[derive(Debug)]
pub struct DeltaPages {
    client: GraphClient,
    mailbox: String,
    window: Window,
    max_page_size: u32,
    /// A first page read ahead, served before anything is fetched.
    first: Option<Page<Event>>,
    next: Option<Url>,
    followed: FollowedLinks,
}

impl DeltaPages {
    /// The next page, or `None` once the page with the delta link was given.
    pub async fn next_page(&mut self) -> Result<Option<DeltaPage>, GraphError> {
        let mailbox = self.mailbox.as_str();
        let page: Page<Event> = match self.first.take() {
            Some(page) => page,
            None => {
                let Some(url) = self.next.take() else {
                    return Ok(None);
                };
                let mut call = Call::new(Method::GET, url, Some(mailbox));
                call.max_page_size = Some(self.max_page_size);
                self.client.send_json(call).await?
            }
        };
        if let Some(link) = &page.next_link {
            self.next = Some(self.followed.next(&self.client, link, mailbox)?);
        } else if page.delta_link.is_none() {
            return Err(super::client::decode(
                mailbox,
                "calendarView/delta",
                "a page with neither @odata.nextLink nor @odata.deltaLink",
            ));
        }
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for event in page.value {
            match (&event.removed, &event.id) {
                (Some(_), Some(id)) => removed.push(id.clone()),
                (Some(_), None) => {}
                (None, _) if self.window.overlaps(&event) => changed.push(event),
                (None, _) => {}
            }
        }
        self.client.fill_sparse(mailbox, &mut changed).await?;
        Ok(Some(DeltaPage {
            changed,
            removed,
            delta_link: page.delta_link,
        }))
    }

    /// Every remaining page, merged.
    pub async fn collect(mut self) -> Result<DeltaRound, GraphError> {
        let mut round = DeltaRound::default();
        while let Some(page) = self.next_page().await? {
            round.changed.extend(page.changed);
            round.removed.extend(page.removed);
            if let Some(link) = page.delta_link {
                round.delta_link = link;
            }
        }
        Ok(round)
    }
}

impl GraphClient {
    /// A delta round over `window`: from the start when `delta_link` is
    /// `None`, else from the link a previous round ended with (called
    /// exactly as given). `max_page_size` sets `Prefer: odata.maxpagesize`
    /// ([`PAGE_SIZE`] when `None`).
    pub fn calendar_view_delta(
        &self,
        mailbox: &str,
        window: Window,
        delta_link: Option<&str>,
        max_page_size: Option<u32>,
    ) -> Result<DeltaPages, GraphError> {
        let first = match delta_link {
            Some(link) => self.link(link, mailbox)?,
            None => {
                let mut url = self.user_url(mailbox, &["calendarView", "delta"]);
                url.query_pairs_mut().extend_pairs(window.query());
                url
            }
        };
        Ok(self.delta_pages(
            mailbox,
            window,
            max_page_size.unwrap_or(PAGE_SIZE),
            None,
            Some(first),
        ))
    }

    /// The delta round of `mailbox` whose first page was read ahead.
    pub fn calendar_view_delta_from(
        &self,
        mailbox: &str,
        window: Window,
        first: &FirstDeltaPage,
    ) -> DeltaPages {
        self.delta_pages(mailbox, window, PAGE_SIZE, Some(first.page.clone()), None)
    }

    /// A round that serves `first` (a page already read), then fetches from
    /// `next`.
    fn delta_pages(
        &self,
        mailbox: &str,
        window: Window,
        max_page_size: u32,
        first: Option<Page<Event>>,
        next: Option<Url>,
    ) -> DeltaPages {
        DeltaPages {
            client: self.clone(),
            mailbox: mailbox.to_string(),
            window,
            max_page_size,
            first,
            next,
            followed: FollowedLinks::default(),
        }
    }

    /// The first page of the delta round from each `(mailbox, delta link)`,
    /// read through `$batch`: one request for 20 mailboxes instead of 20
    /// (each item still counts against its own mailbox's limits). A mailbox
    /// whose page could not be read this way is left out, and its round
    /// asks for the page alone, which retries as usual or says why.
    pub async fn first_delta_pages(
        &self,
        rounds: &[(String, String)],
    ) -> HashMap<String, FirstDeltaPage> {
        let mut requests = Vec::with_capacity(rounds.len());
        for (index, (mailbox, link)) in rounds.iter().enumerate() {
            match self.link(link, mailbox) {
                Ok(url) => {
                    requests.push(BatchRequest::get(index.to_string(), self.batch_path(&url)))
                }
                Err(error) => tracing::debug!(mailbox, %error, "delta link not batched"),
            }
        }
        let responses = match self.batch(None, &requests).await {
            Ok(responses) => responses,
            Err(error) => {
                tracing::info!(%error, mailboxes = requests.len(), "could not read delta pages in a batch; each mailbox asks alone");
                return HashMap::new();
            }
        };
        let mut pages = HashMap::with_capacity(responses.len());
        for response in responses {
            let Some((mailbox, link)) = response
                .id
                .parse::<usize>()
                .ok()
                .and_then(|index| rounds.get(index))
            else {
                continue;
            };
            match response.into_result::<Page<Event>>(mailbox) {
                Ok(page) => {
                    pages.insert(
                        mailbox.clone(),
                        FirstDeltaPage {
                            link: link.clone(),
                            page,
                        },
                    );
                }
                Err(error) => {
                    tracing::debug!(mailbox, %error, "batched delta page failed; the mailbox asks alone");
                }
            }
        }
        pages
    }

    /// Replaces sparse entries (occurrences delta sends with ids and times
    /// only) by the full event, read through `$batch`. An occurrence deleted
    /// in between stays as it came.
    async fn fill_sparse(&self, mailbox: &str, events: &mut [Event]) -> Result<(), GraphError> {
        let requests: Vec<BatchRequest> = events
            .iter()
            .enumerate()
            .filter(|(_, event)| event.is_sparse())
            .filter_map(|(index, event)| {
                let id = event.id.as_deref()?;
                let url = self.user_url(mailbox, &["events", id]);
                Some(BatchRequest::get(index.to_string(), self.batch_path(&url)))
            })
            .collect();
        if requests.is_empty() {
            return Ok(());
        }
        for response in self.batch(Some(mailbox), &requests).await? {
            let Ok(index) = response.id.parse::<usize>() else {
                continue;
            };
            match response.into_result::<Event>(mailbox) {
                Ok(full) => {
                    if let Some(slot) = events.get_mut(index) {
                        *slot = full;
                    }
                }
                Err(GraphError::ItemNotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}
