//! The database schema and its migrations, versioned with `PRAGMA user_version`.

/// Each entry migrates from version `i` to `i + 1`. Never edit a shipped entry:
/// append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the core.
    r#"
    CREATE TABLE messages (              -- the ledger: every inbound message, whatever its outcome
        id            INTEGER PRIMARY KEY,
        mailbox       TEXT NOT NULL,
        name          BLOB NOT NULL,     -- file name as received (MESH: NAME.dat)
        ctl_name      BLOB,              -- MESH: NAME.ctl
        compressed    INTEGER NOT NULL DEFAULT 0, -- MESH Compress=Y: the .dat is gzip
        sha256        TEXT,              -- of the data as received; NULL when not read
        received_at   TEXT NOT NULL,
        kind          TEXT NOT NULL,     -- extract | attendance | nhs_status | refused
        status        TEXT NOT NULL,
        records       INTEGER NOT NULL DEFAULT 0,
        applied       INTEGER NOT NULL DEFAULT 0,
        rejected      INTEGER NOT NULL DEFAULT 0,
        warnings      INTEGER NOT NULL DEFAULT 0,
        authority     TEXT,
        extract_type  TEXT,
        extracted_at  TEXT,
        sequence      INTEGER,
        src_folder    TEXT NOT NULL,     -- where the file is while state = 'moving': in | quarantine
        src_name      BLOB NOT NULL,     -- its name there
        src_ctl_name  BLOB,
        dest_folder   TEXT NOT NULL,     -- archive/YYYY-MM-DD | failed | quarantine
        dest_name     BLOB NOT NULL,
        dest_ctl_name BLOB,              -- MESH: the .ctl's name in dest_folder
        state         TEXT NOT NULL      -- moving | done
    );
    CREATE INDEX messages_by_hash ON messages(mailbox, sha256);
    CREATE INDEX messages_by_state ON messages(state) WHERE state <> 'done';

    CREATE TABLE receipts (
        id          INTEGER PRIMARY KEY,
        message_id  INTEGER NOT NULL REFERENCES messages(id),
        status      TEXT NOT NULL,
        records     INTEGER NOT NULL,
        applied     INTEGER NOT NULL,
        rejected    INTEGER NOT NULL,
        warnings    INTEGER NOT NULL
    );
    CREATE TABLE problems (
        receipt_id  INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        line        INTEGER,
        ref         TEXT NOT NULL,
        severity    TEXT NOT NULL,
        code        TEXT NOT NULL,
        field       TEXT NOT NULL,
        message     TEXT NOT NULL,
        PRIMARY KEY (receipt_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE outbound (               -- every outbound file: reserved in the transaction
        id          INTEGER PRIMARY KEY,  -- that causes it, written after the commit
        mailbox     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        sequence    INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        stem        TEXT NOT NULL,        -- KIND_MAILBOX_STAMP_SEQ
        format      TEXT NOT NULL,        -- csv | xml
        framing     TEXT NOT NULL,        -- plain | mesh
        receipt_id  INTEGER,
        copy_to     TEXT,                 -- a second folder for a copy (failed/)
        params      TEXT,                 -- kind-specific, JSON (alerts: type, seq range, since)
        state       TEXT NOT NULL         -- pending | written
    );
    CREATE INDEX outbound_pending ON outbound(state) WHERE state <> 'written';
    CREATE TABLE sequences (
        mailbox TEXT NOT NULL,
        kind    TEXT NOT NULL,
        last    INTEGER NOT NULL,
        PRIMARY KEY (mailbox, kind)
    ) WITHOUT ROWID;

    CREATE TABLE records (
        id                  INTEGER PRIMARY KEY,
        authority           TEXT NOT NULL,
        local_id            TEXT NOT NULL,
        plan_type           TEXT NOT NULL,
        nhs_number          TEXT NOT NULL,
        date_of_birth       TEXT,
        start_date          TEXT NOT NULL,
        end_date            TEXT,
        ended_reason        TEXT,
        team                TEXT,
        office_hours_phone  TEXT,
        out_of_hours_phone  TEXT,
        email               TEXT,
        created_seq         INTEGER NOT NULL,   -- change_seq when inserted: ADD vs UPDATE
        change_seq          INTEGER NOT NULL,
        UNIQUE (authority, local_id, plan_type)
    );
    CREATE INDEX records_by_nhs ON records(nhs_number);
    CREATE INDEX records_by_end ON records(end_date) WHERE end_date IS NOT NULL;
    CREATE INDEX records_by_change ON records(change_seq);

    CREATE TABLE removed (                -- tombstones of purged and deleted records, for alert REMOVE rows
        alert_id    TEXT PRIMARY KEY,
        nhs_number  TEXT NOT NULL,
        created_seq INTEGER NOT NULL,
        change_seq  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX removed_by_change ON removed(change_seq);

    CREATE TABLE accesses (
        record_id    INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        accessed_at  TEXT NOT NULL,
        site_ods_code TEXT NOT NULL,
        setting      TEXT NOT NULL
    );
    CREATE INDEX accesses_by_record ON accesses(record_id, accessed_at);

    CREATE TABLE nhs_status (
        nhs_number      TEXT PRIMARY KEY,
        status          TEXT NOT NULL,
        replacement     TEXT,
        effective_date  TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE authority_state (
        authority         TEXT PRIMARY KEY,
        last_extracted_at TEXT,
        last_sequence     INTEGER,
        last_full_at      TEXT,
        last_delta_at     TEXT
    ) WITHOUT ROWID;

    CREATE TABLE decisions (              -- operator decisions, carried out by the next pass
        id            INTEGER PRIMARY KEY,
        message_id    INTEGER NOT NULL REFERENCES messages(id),
        decision      TEXT NOT NULL,      -- release | discard
        requested_at  TEXT NOT NULL,
        requested_by  TEXT NOT NULL,
        done_at       TEXT
    );

    CREATE TABLE audit (                  -- append-only: a controlled record
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        detail  TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

    CREATE TABLE events_seen (            -- (site, event_id) processed once, across files
        site     TEXT NOT NULL,
        event_id TEXT NOT NULL,
        seen_on  TEXT NOT NULL,
        PRIMARY KEY (site, event_id)
    ) WITHOUT ROWID;

    CREATE TABLE notifications (          -- access notification rows, as sent (re-sent byte-identical)
        id              INTEGER PRIMARY KEY,
        message_id      INTEGER NOT NULL,
        authority       TEXT NOT NULL,
        outbound_id     INTEGER,
        local_id        TEXT NOT NULL,
        nhs_number      TEXT NOT NULL,
        plan_type       TEXT NOT NULL,
        plan_status     TEXT NOT NULL,
        plan_end_date   TEXT,
        accessed_at     TEXT NOT NULL,
        site_ods_code   TEXT NOT NULL,
        site_name       TEXT NOT NULL,
        setting         TEXT NOT NULL,
        user_name       TEXT NOT NULL,
        user_role       TEXT NOT NULL,
        created_on      TEXT NOT NULL
    );
    CREATE INDEX notifications_by_outbound ON notifications(outbound_id);
    CREATE INDEX notifications_by_message ON notifications(message_id, authority);

    CREATE TABLE inactive_notices (       -- inactive NHS number rows, as sent
        id              INTEGER PRIMARY KEY,
        message_id      INTEGER NOT NULL,
        authority       TEXT NOT NULL,
        outbound_id     INTEGER,
        local_id        TEXT NOT NULL,
        nhs_number      TEXT NOT NULL,
        plan_type       TEXT NOT NULL,
        status          TEXT NOT NULL,
        replacement     TEXT,
        effective_date  TEXT NOT NULL,
        created_on      TEXT NOT NULL
    );
    CREATE INDEX inactive_by_outbound ON inactive_notices(outbound_id);
    CREATE INDEX inactive_by_message ON inactive_notices(message_id, authority);

    CREATE TABLE site_state (             -- what each site was last sent
        site            TEXT PRIMARY KEY,
        last_created_at TEXT NOT NULL,
        last_seq        INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE alert_requests (         -- operator requests for a FULL alert extract
        id            INTEGER PRIMARY KEY,
        site          TEXT NOT NULL,
        requested_at  TEXT NOT NULL,
        requested_by  TEXT NOT NULL,
        done_at       TEXT
    );

    CREATE TABLE jobs (                   -- the daemon's scheduled jobs
        name        TEXT PRIMARY KEY,     -- alerts_delta | alerts_full | holdings
        last_run_at TEXT,
        last_day    TEXT                  -- daily jobs: the Europe/London date last run for
    ) WITHOUT ROWID;

    CREATE TABLE sftp_downloads (         -- files taken from a partner's SFTP remote_in
        mailbox  TEXT NOT NULL,
        name     TEXT NOT NULL,           -- the remote file name
        size     INTEGER NOT NULL,
        mtime    INTEGER NOT NULL,
        state    TEXT NOT NULL,           -- downloading | local (durable in in/) | done (removed remotely)
        at       TEXT NOT NULL,
        PRIMARY KEY (mailbox, name, size, mtime)
    ) WITHOUT ROWID;

    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters VALUES ('change_seq', 0);
    -- The key of the opaque alert ids (a keyed hash of the record's row id, never of its local_id).
    INSERT INTO counters VALUES ('alert_secret', random());
    "#,
    // 1 -> 2 (issue 7): a content hash per record, so that re-applying an unchanged
    // record costs a compare in memory (NULL = unknown: compared column by column);
    // the end_date index goes (every insert of an ended record paid for it; the purge
    // reads the table only on the days `counters.purge_due` says it may find work).
    r#"
    ALTER TABLE records ADD COLUMN row_hash INTEGER;
    DROP INDEX records_by_end;
    "#,
    // 2 -> 3 (issue 13). The first text of 1 -> 2 kept `records_by_end`, which the
    // text above drops: every database now ends equal to a fresh one. Failures of a
    // file counted across passes (bounded retries); the `--now` of an audited command
    // kept beside the real time; the database's identity, marked on its mailbox root.
    r#"
    DROP INDEX IF EXISTS records_by_end;
    CREATE TABLE failures (               -- files that failed, not for the environment's sake
        mailbox   TEXT NOT NULL,
        name      BLOB NOT NULL,
        error     TEXT NOT NULL,          -- the last failure; another one starts the count again
        attempts  INTEGER NOT NULL,
        last_at   TEXT NOT NULL,
        PRIMARY KEY (mailbox, name)
    ) WITHOUT ROWID;
    ALTER TABLE audit ADD COLUMN pretend_at TEXT;   -- --now of the command, when given; `at` is the real time
    INSERT OR IGNORE INTO counters VALUES ('database_id', abs(random()));
    "#,
    // 3 -> 4 (issue 15): the MESH API transport. Every message taken from the hub's
    // MESH inbox by its MESH message id (so one listed again is only acknowledged),
    // every outbound file sent by its name (so a send is repeated only when its
    // outcome is unknown), the REPORTs received, and the last poll and handshake.
    r#"
    CREATE TABLE mesh_inbound (
        message_id  TEXT PRIMARY KEY,     -- the MESH message id
        sender      TEXT,                 -- Mex-From (none on a REPORT)
        mailbox     TEXT,                 -- the partner whose in/ it went to (kind = data)
        kind        TEXT NOT NULL,        -- data | kept | report
        state       TEXT NOT NULL,        -- fetched | placed | acked
        bytes       INTEGER NOT NULL DEFAULT 0,
        at          TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE mesh_outbound (
        mailbox     TEXT NOT NULL,        -- the partner it is for
        file        TEXT NOT NULL,        -- its name in out/
        local_id    TEXT NOT NULL,        -- Mex-LocalID: KIND_SEQUENCE
        message_id  TEXT,                 -- the MESH message id, once the server gave one
        chunks      INTEGER NOT NULL DEFAULT 1,
        state       TEXT NOT NULL,        -- sending | uploading | sent | refused
        attempts    INTEGER NOT NULL DEFAULT 0,
        error       TEXT,                 -- the last refusal or failure
        at          TEXT NOT NULL,
        PRIMARY KEY (mailbox, file)
    ) WITHOUT ROWID;
    CREATE INDEX mesh_outbound_by_message ON mesh_outbound(message_id);
    CREATE TABLE mesh_reports (
        report_id   TEXT PRIMARY KEY,     -- the REPORT's own MESH message id
        linked_id   TEXT,                 -- Mex-LinkedMsgID: the message it is about
        mailbox     TEXT,                 -- the partner of the outbound file it names
        file        TEXT,
        code        TEXT NOT NULL,
        description TEXT NOT NULL,
        event       TEXT NOT NULL,
        at          TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE mesh_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    "#,
    // 4 -> 5 (issue 16): when the hub first ran with each authority configured, so an
    // authority that never sent an extract is stale only once `stale_after` has passed
    // since then (SPEC §10).
    r#"
    CREATE TABLE authority_seen (
        authority     TEXT PRIMARY KEY,
        first_seen_at TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;
