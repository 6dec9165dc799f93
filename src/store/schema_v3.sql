-- halosync schema version 3: an index for finding a meeting's links by its
-- iCalUId in any mailbox. Version 1's index leads with the mailbox, so that
-- lookup scanned every link, once per unlinked event: an import slowed down
-- as the table grew (58,000 of 100,000 events in 11 minutes).
CREATE INDEX links_by_meeting ON links (ical_uid) WHERE ical_uid IS NOT NULL;
